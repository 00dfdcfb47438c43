"""The Ray engine on a real cluster: two nodes of 1 CPU each (``ray.cluster_utils.Cluster``,
separate raylets) on this machine, driven by the real CLI.

Ray advertises the machine's interface address even when told 127.0.0.1, so the cluster and
its driver run inside a network namespace this module creates holding only ``lo`` (``ip
netns add``; root is needed): there Ray binds 127.0.0.1 and no traffic leaves loopback. The
namespace is deleted afterwards; where it cannot be made the cluster tests are skipped with
the reason. The cluster and the driver are run by ``tests/support/ray_cluster.py``.

Every Ray run is compared with one local run (the process pool) of the same corpus: the same
rows with the same ids in the same order per split, the same text, summaries and page bytes,
the same shard entries (rows, bytes, SHA-256) and manifest counts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import articles, run_cli, write_jsonl

from deepsynth.data.manifest import MANIFEST_NAME

pytestmark = pytest.mark.timeout(240)
HARNESS = Path(__file__).parent / "support" / "ray_cluster.py"
SHARD_SIZE = 10


def corpus(folder: Path) -> Path:
    """A train and a validation split with duplicates, leaked and empty rows."""
    validation = articles(30, words=30, prefix="val")
    train = articles(200, words=30, prefix="doc")
    train += [dict(r, id=f"leak-{i}") for i, r in enumerate(validation[:4])]
    train += [dict(r, id=f"dup-{i}") for i, r in enumerate(train[:5])]
    train += [{"id": f"empty-{i}", "article": " \u200b ", "highlights": "x"} for i in range(3)]
    write_jsonl(folder / "validation.jsonl", validation)
    write_jsonl(folder / "train.jsonl", train)
    return folder


# Rendering variety on in every run, so the Ray tasks are seen to draw each row in the same
# sampled style as the local pool (the style is seeded by the row id, not by who renders it).
VARIETY = {"vary_fonts": ["DejaVuSans", "DejaVuSerif"], "vary_font_size_min": 10,
           "vary_font_size_max": 14, "vary_margin_min": 4, "vary_margin_max": 24}


def variety_flags() -> list[str]:
    flags = [f for font in VARIETY["vary_fonts"] for f in ("--vary-font", font)]
    return flags + [f for name, value in VARIETY.items() if name != "vary_fonts"
                    for f in (f"--{name.replace('_', '-')}", str(value))]


def command(source: Path, out: str, *extra: str) -> list[str]:
    return ["generate", "--source", str(source), "--out", out, "--text-field", "article",
            "--summary-field", "highlights", "--id-field", "id", "--page-size", "tiny",
            "--shard-size", str(SHARD_SIZE), *variety_flags(), *extra]


def dataset(folder: Path) -> tuple[dict, dict]:
    """Rows of each split in manifest order, and the manifest's shards and counts."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    rows = {name: [r for shard in state["shards"]
                   for r in pq.read_table(folder / shard["file"]).to_pylist()]
            for name, state in manifest["splits"].items()}
    facts = {"status": manifest["status"], "totals": manifest["totals"],
             "splits": {name: {"counts": s["counts"], "source_rows_read": s["source_rows_read"],
                               "shards": s["shards"]}
                        for name, s in manifest["splits"].items()}}
    return rows, facts


def assert_equal_datasets(ray_folder: Path, local_folder: Path) -> None:
    ray_rows, ray_facts = dataset(ray_folder)
    local_rows, local_facts = dataset(local_folder)
    for split in local_rows:
        assert [r["id"] for r in ray_rows[split]] == [r["id"] for r in local_rows[split]]
        assert ray_rows[split] == local_rows[split]  # text, summary, page bytes, stats
    assert ray_facts == local_facts
    # Only the recorded shards are in data/ (nothing duplicated or left behind).
    recorded = {s["file"] for split in ray_facts["splits"].values() for s in split["shards"]}
    assert {f"data/{p.name}" for p in (ray_folder / "data").iterdir()} == recorded


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def local_run(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "ds"
    result = run_cli(*command(source, str(out), "--workers", "2"))
    assert result.returncode == 0, result.stderr
    _, facts = dataset(out)
    assert facts["totals"]["leaked"] == 4 and facts["totals"]["duplicates"] == 5
    assert facts["totals"]["empty"] == 3 and facts["totals"]["written"] == 230
    styles = {tuple(r["render_params"].values()) for r in dataset(out)[0]["train"]}
    assert len(styles) > 20  # rows drawn in many styles
    return out


@pytest.fixture(scope="module")
def netns():
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command: cannot make a network namespace for the Ray cluster")
    name = f"deepsynth-ray-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                          check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace for the Ray cluster (ip netns add: "
                    f"{made.stderr.strip() or made.returncode}; root is needed)")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def on_cluster(netns: str, scenario: str, out: Path, args: list[str]) -> dict:
    """Run the harness (cluster and driver) in the namespace; its report."""
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(HARNESS),
                           scenario, str(out / MANIFEST_NAME), "--", *args],
                          capture_output=True, text=True, timeout=220, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["address"].startswith("127.0.0.1:"), report["address"]  # loopback only
    return report


def test_ray_run_equals_the_local_run(netns, source, local_run, tmp_path):
    out = tmp_path / "ray"
    # The output as an fsspec file:// URL: workers write their shards straight there.
    report = on_cluster(netns, "plain", out, command(source, f"file://{out}", "--engine",
                                                     "ray"))
    run = report["runs"][-1]
    assert run["returncode"] == 0, run["stderr"]
    assert_equal_datasets(out, local_run)


def test_losing_a_node_mid_run_still_ends_equal(netns, source, local_run, tmp_path):
    out = tmp_path / "ray"
    report = on_cluster(netns, "remove-node", out, command(source, str(out), "--engine",
                                                           "ray"))
    run = report["runs"][-1]
    assert run["returncode"] == 0, run["stderr"]
    total = sum(len(s["shards"]) for s in dataset(local_run)[1]["splits"].values())
    assert report["shards_before"] < total  # the node went while shards were still to do
    assert_equal_datasets(out, local_run)


def test_driver_sigkill_then_the_same_command_resumes_equal(netns, source, local_run,
                                                            tmp_path):
    out = tmp_path / "ray"
    report = on_cluster(netns, "kill-driver", out, command(source, str(out), "--engine",
                                                           "ray"))
    killed, resumed = report["runs"]
    assert killed["returncode"] == -9
    total = sum(len(s["shards"]) for s in dataset(local_run)[1]["splits"].values())
    assert 1 <= report["shards_after_kill"] < total  # killed mid-run, some shards kept
    assert resumed["returncode"] == 0, resumed["stderr"]
    assert "rows already written" in resumed["stderr"]
    assert_equal_datasets(out, local_run)


def test_a_generation_job_of_the_service_runs_on_its_cluster(netns, source, local_run,
                                                             tmp_path):
    """POST /api/dataset/generate with engine ray, to `deepsynth serve --ray-address`."""
    root = tmp_path / "root"
    shutil.copytree(source, root / "uploads" / "corpus")
    request = {"name": "news", "source": "uploads/corpus", "text_field": "article",
               "summary_field": "highlights", "id_field": "id", "page_size": "tiny",
               "shard_size": SHARD_SIZE, "engine": "ray", **VARIETY}
    report = on_cluster(netns, "service", root / "datasets" / "news",
                        [str(root), json.dumps(request)])
    assert report["job"]["status"] == "completed", report["job"]
    assert_equal_datasets(root / "datasets" / "news", local_run)
    manifest = json.loads((root / "datasets" / "news" / MANIFEST_NAME).read_text())
    assert manifest["config"]["engine"] == "ray"
    assert manifest["config"]["ray_address"] == report["address"]


def test_a_cluster_without_cpus_is_refused_before_any_work(netns, source, tmp_path):
    out = tmp_path / "ray"
    report = on_cluster(netns, "no-cpus", out, command(source, str(out), "--engine", "ray"))
    run = report["runs"][-1]
    assert run["returncode"] == 2
    assert "error: ray_address names a Ray cluster with no CPUs" in run["stderr"]
    assert not (out / MANIFEST_NAME).exists()


def test_an_output_folder_the_nodes_cannot_write_is_refused_before_any_work(netns, source,
                                                                             tmp_path):
    """The nodes see the output's parent read-only (a bind mount in their own mount
    namespace) while the driver, outside it, can write there: as when --out is not on
    storage the nodes share."""
    if shutil.which("unshare") is None:
        pytest.skip("no `unshare` command: cannot give the nodes their own mount namespace")
    shared = tmp_path / "shared"
    shared.mkdir()
    script = (f"mount --bind {shared} {shared} && mount -o remount,bind,ro {shared} && "
              f"exec {sys.executable} {HARNESS} serve {shared / MANIFEST_NAME} --")
    cluster = subprocess.Popen(["ip", "netns", "exec", netns, "unshare", "--mount",
                                "--propagation", "private", "sh", "-c", script],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        address = json.loads(cluster.stdout.readline())["address"]
        out = shared / "ds"
        driver = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m",
                                 "deepsynth", *command(source, str(out), "--engine", "ray",
                                                       "--ray-address", address)],
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=60)
    assert driver.returncode == 2, driver.stderr[-2000:]
    assert f"cannot write the output folder {out}" in driver.stderr
    assert "shared file system" in driver.stderr
    assert not (out / MANIFEST_NAME).exists()


def test_an_unreachable_ray_address_is_refused_in_seconds(source, tmp_path):
    with socket.socket() as probe:  # a loopback port nothing listens at
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ray"
    result = run_cli(*command(source, str(out), "--engine", "ray", "--ray-address",
                              f"127.0.0.1:{port}"), timeout=60)
    assert result.returncode == 2
    assert f"error: ray_address is unreachable: nothing answers at 127.0.0.1:{port}" in \
        result.stderr
    assert not (out / MANIFEST_NAME).exists()


def test_engine_ray_without_ray_installed_names_the_extra(source, tmp_path):
    # Ray made unimportable the way Python documents: None in sys.modules makes `import ray`
    # raise ImportError (and find_spec refuse), as when the package is not installed.
    blocked = ("import sys; sys.modules['ray'] = None; from deepsynth.cli.main import main; "
               "sys.exit(main())")
    result = subprocess.run([sys.executable, "-c", blocked,
                             *command(source, str(tmp_path / "ray"), "--engine", "ray")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "pip install deepsynth[ray]" in result.stderr
    assert "error: engine ray needs Ray, which is not installed" in result.stderr
