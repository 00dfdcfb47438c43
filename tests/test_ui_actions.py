"""Issue 18 item 13 in a real browser (Debian's Chromium, a live server, real jobs over a
tiny model and a 7-row dataset): the Models table's Evaluate, Export, Push and Delete, the
Datasets page's QA (render QA: the worst pages as thumbnails), Push and Delete, and browsing a
dataset's rows with their pages.

The Hub is the only test double: ``GatedHub`` (a ``HubDouble``, tests/support/server.py)
records what a push sends and can hold an upload until the test releases it, so a push job
is still running when Delete is clicked."""

from __future__ import annotations

import re
import shutil
import threading

import pytest
from support.server import Client, HubDouble, running, wait_job
from support.ui import SECONDS, api_get, tour

from deepsynth.config.server import ServerConfig

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


class GatedHub(HubDouble):
    """TEST DOUBLE of the Hub client (the Hub is unreachable here): HubDouble, whose uploads
    wait while ``release`` is clear."""

    entered = threading.Event()
    release = threading.Event()

    def upload_file(self, local_path, path_in_repo, repo_id):
        GatedHub.entered.set()
        assert GatedHub.release.wait(60), "the test never released the upload"
        super().upload_file(local_path, path_in_repo, repo_id)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dataset ``browse`` (7 rows a split) and a model ``tiny-run`` trained on it."""
    from deepsynth.jobs.kinds import job_kinds
    from deepsynth.jobs.manager import JobManager
    from deepsynth.jobs.state import JobStore

    root = tmp_path_factory.mktemp("ui-actions") / "data"
    GatedHub.release.set()
    manager = JobManager(JobStore(root / "jobs"), job_kinds(root, hub=GatedHub))
    with running(ServerConfig(data_root=str(root), threads=16), manager=manager) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "name": "browse", "max_samples": 7, "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert status == 202, made
        assert wait_job(client, made["job_id"], 120)["status"] == "completed"
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "browse", "preset": "quick_test", "max_steps": 2, "eval_steps": 2,
            "save_steps": 2, "eval_samples": 2, "max_new_tokens": 8, "name": "tiny-run"})
        assert status == 202, started
        trained = wait_job(client, started["job_id"], 300)
        assert trained["status"] == "completed", trained["error"]
        yield base, root
    GatedHub.release.set()


def answer_dialogs(page, accept: bool, asked: list[str]) -> None:
    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()
    page.once("dialog", answer)


def held_push(page, row, repo: str):
    """Push from ``row`` with the upload held: the job runs (and uses what it pushes)."""
    GatedHub.entered.clear()
    GatedHub.release.clear()
    row.get_by_role("button", name="Push").click()
    dialog = page.get_by_role("dialog")
    # No token field: the job uses the server's own (HF_TOKEN in its environment).
    expect(dialog.get_by_label("Hub repository")).to_be_visible()
    assert dialog.locator('input[type="password"]').count() == 0
    dialog.get_by_label("Hub repository").fill("not-a-repo")
    dialog.get_by_role("button", name="Push", exact=True).click()
    expect(dialog.locator('[id$="repo_id-error"]')).to_contain_text("ORG/NAME")
    dialog.get_by_label("Hub repository").fill(repo)
    dialog.get_by_role("button", name="Push", exact=True).click()
    expect(dialog).to_have_count(0)
    assert GatedHub.entered.wait(60), "the push job never reached the Hub"


def test_models_table_evaluates_exports_pushes_and_deletes(server, page):
    base, root = server
    page.goto(base + "/models")
    row = page.locator('tr[data-model="tiny-run"]')
    expect(row).to_contain_text("ready")
    # Evaluate: a job, followed here, with a link to the monitor.
    row.get_by_role("button", name="Evaluate").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Dataset")).to_have_value("browse")
    dialog.get_by_label("Max samples").fill("2")
    dialog.get_by_role("button", name="Start evaluation").click()
    box = page.locator("#model-job")
    expect(box.get_by_role("link", name=re.compile("in the monitor"))).to_have_attribute(
        "href", re.compile(r"^/monitor\?job=evaluate-"))
    expect(page.locator("#evaluation-done")).to_contain_text("2 rows of ",
                                                              timeout=120 * SECONDS)
    # Export: into the data root's exports/, adapters merged, replacing an earlier export.
    stale = root / "exports" / "tiny-run" / "stale.bin"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier export")
    row.get_by_role("button", name="Export").click()
    expect(dialog.get_by_label("Merge the adapters into the weights")).to_be_checked()
    dialog.get_by_role("button", name="Export", exact=True).click()
    expect(page.locator("#export-done")).to_contain_text(
        "Exported to exports/tiny-run", timeout=120 * SECONDS)
    expect(page.locator("#export-done")).to_contain_text("adapters merged")
    tour(page, "models-actions")
    assert (root / "exports" / "tiny-run" / "model.safetensors").is_file()
    assert not stale.exists()
    # Push (GatedHub holds the upload): Delete is refused while the push job reads the model.
    held_push(page, row, "me/tiny-run")
    asked: list[str] = []
    answer_dialogs(page, True, asked)
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".toast.error")).to_contain_text("is used by job push_model-")
    assert "“tiny-run”" in asked[0], asked
    assert (root / "models" / "tiny-run" / "final").is_dir()
    GatedHub.release.set()
    expect(box.locator(".badge")).to_have_text("completed", timeout=120 * SECONDS)
    hub = GatedHub.instances[-1]
    assert (hub.repo_type, hub.token, hub.created) == ("model", None, [("me/tiny-run", True)])
    assert "model.safetensors" in hub.uploaded
    # Delete asks first, naming the model: dismissed, nothing is deleted.
    answer_dialogs(page, False, asked)
    row.get_by_role("button", name="Delete").click()
    expect(row).to_be_visible()
    assert len(asked) == 2 and (root / "models" / "tiny-run").is_dir()
    answer_dialogs(page, True, asked)
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert not (root / "models" / "tiny-run").exists()


def test_datasets_page_browses_rows_pushes_and_deletes(server, page):
    base, root = server
    shutil.copytree(root / "datasets" / "browse", root / "datasets" / "doomed")
    first = api_get(base, "/api/datasets/browse/samples?split=train&limit=1")["samples"][0]
    page.goto(base + "/datasets")
    row = page.locator('tr[data-dataset="browse"]')
    expect(row).to_contain_text("train: 7")
    row.get_by_role("button", name="Browse").click()
    expect(page.get_by_label("Dataset", exact=True)).to_have_value("browse")
    page.get_by_label("Split", exact=True).select_option("train")
    rows = page.locator("#rows .browse-row")
    expect(page.locator("#rows-range")).to_have_text("rows 1–5 of 7")
    expect(rows).to_have_count(5)
    expect(rows.first.locator(".row-text")).to_have_text(first["text"])
    expect(rows.first.locator(".row-summary")).to_have_text(first["summary"])
    tour(page, "datasets")
    # Each page as a thumbnail; clicked, full size in a dialog that Escape closes.
    thumb = rows.first.get_by_role("button", name="Page 1 of row 1, full size")
    expect(thumb.locator("img")).to_have_js_property("complete", True)
    thumb.click()
    full = page.locator("#page-full")
    expect(full).to_be_visible()
    page.wait_for_function("() => document.querySelector('#page-full').naturalWidth === 256")
    page.keyboard.press("Escape")
    expect(full).to_be_hidden()
    # Paging from the keyboard: the Next button (disabled on the last rows, handing the
    # focus to Previous), then the arrow keys on the rows.
    page.locator("#rows-next").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#rows-range")).to_have_text("rows 6–7 of 7")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-index", "5")
    expect(page.locator("#rows-next")).to_be_disabled()
    expect(page.locator("#rows-previous")).to_be_focused()
    assert "offset=5" in page.url
    page.locator("#rows").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#rows-range")).to_have_text("rows 1–5 of 7")
    expect(page.locator("#rows")).to_be_focused()
    page.keyboard.press("PageDown")
    expect(page.locator("#rows-range")).to_have_text("rows 6–7 of 7")
    # Push through the fake Hub; the dataset cannot be deleted while the push reads it.
    held_push(page, row, "me/browse")
    asked: list[str] = []
    answer_dialogs(page, True, asked)
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".toast.error")).to_contain_text("is used by job push_dataset-")
    GatedHub.release.set()
    expect(page.locator("#push-done")).to_contain_text("files to me/browse",
                                                        timeout=120 * SECONDS)
    hub = GatedHub.instances[-1]
    assert (hub.repo_type, hub.token, hub.created) == ("dataset", None, [("me/browse", True)])
    assert "deepsynth-manifest.json" in hub.uploaded
    # Delete asks first, naming the dataset.
    doomed = page.locator('tr[data-dataset="doomed"]')
    answer_dialogs(page, True, asked)
    doomed.get_by_role("button", name="Delete").click()
    expect(doomed).to_have_count(0)
    assert "“doomed”" in asked[-1], asked
    assert not (root / "datasets" / "doomed").exists()
    expect(page.get_by_label("Dataset", exact=True).locator('option[value="doomed"]')).to_have_count(0)


@pytest.mark.skipif(not shutil.which("tesseract"),
                    reason="render QA needs Tesseract (scripts/setup.sh installs it)")
def test_datasets_page_runs_render_qa_and_shows_the_worst_pages(server, page):
    base, root = server
    shutil.copytree(root / "datasets" / "browse", root / "datasets" / "checked")
    page.goto(base + "/datasets")
    row = page.locator('tr[data-dataset="checked"]')
    expect(row.locator(".quality")).to_contain_text("not checked")
    row.get_by_role("button", name="QA").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Pages to read back").fill("0")
    dialog.get_by_role("button", name="Run QA").click()
    expect(dialog.locator("#qa-sample-error")).to_contain_text("sample")  # refused, kept open
    dialog.get_by_label("Pages to read back").fill("3")
    dialog.get_by_role("button", name="Run QA").click()
    report = page.locator("#dataset-qa-report")
    expect(report.locator("h3")).to_contain_text("over 3 of", timeout=120 * SECONDS)
    expect(report.locator("figure img")).to_have_count(3)
    page.wait_for_function(  # every thumbnail is a page that loaded
        "() => [...document.querySelectorAll('#dataset-qa-report img')]"
        ".every((img) => img.complete && img.naturalWidth === 256)")
    stored = api_get(base, "/api/datasets/checked")["qa"]
    assert stored["sample"] == 3 and stored["cer"] is not None
    # The listing now shows the stored report, opening to the same worst pages.
    details = page.locator('tr[data-dataset="checked"] details.qa-details')
    expect(details.locator("summary")).to_contain_text(
        f"CER {100 * stored['cer']:.1f}% (3 pages)")
    details.locator("summary").click()
    expect(details.locator("figure")).to_have_count(len(stored["worst"]))
    tour(page, "datasets-qa")
