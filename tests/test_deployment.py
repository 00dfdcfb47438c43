"""Deployment: the container files, checked without a container engine, and the start scripts,
run for real.

Docker does not run on the development machine, so the images are never built here. What can
be checked without an engine is: the compose files parse, reference Dockerfiles, build contexts,
ports, volumes and variables that exist and agree with each other (cpu on 5000, gpu on 5001,
published on the host's loopback by default, one named volume for the data root, healthchecks
on the service's own port, a GPU reservation, time for a checkpoint on SIGTERM); the Dockerfiles
pin their base images, run as a non-root user, have a HEALTHCHECK, install dependencies before
copying the source and copy only files that exist and that .dockerignore lets into the build
context; the accelerate configurations load with accelerate's own parser. When a compose
binary is installed, `docker compose config` validates the files too (skipped otherwise).

The start scripts start both services on free ports over a temporary data root (reusing the
checkout's .venv), health answers with each role, the demo dataset the script renders is seen
by the training service (one data root), and stop-all.sh leaves no process and no busy port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ["start-all.sh", "start-dataset-generation.sh", "start-model-training.sh",
           "stop-all.sh", "scripts/services.sh", "scripts/setup.sh",
           "scripts/docker-entrypoint.sh", "run-tests.sh", ".ci/run"]
SERVICES = {"cpu": {"port": 5000, "dockerfile": "Dockerfile.cpu"},
            "gpu": {"port": 5001, "dockerfile": "Dockerfile"}}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


# ---------------------------------------------------------------------------------------------
# Helpers: compose variable interpolation, Dockerfile instructions, .dockerignore matching.

VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value, environ: dict[str, str] | None = None):
    """Compose's ${NAME} / ${NAME:-default} substitution, with an empty environment by
    default: what `docker compose up` does on a machine where nothing is set."""
    environ = environ or {}
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: environ.get(m["name"]) or (m["default"] or ""), value)
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    return value


def compose(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text(encoding="utf-8"))


def service(name: str) -> dict:
    return compose(f"docker-compose.{name}.yml")["services"][name]


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in (REPO / dockerfile).read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    result = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
    return result


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments)


def copy_sources(arguments: str) -> list[str]:
    parts = [p for p in arguments.split() if not p.startswith("--")]
    return parts[:-1]


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negated, re.compile(regex + "$")))
    return rules


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for negated, regex in dockerignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            included = negated
    return included


# ---------------------------------------------------------------------------------------------
# Compose files

@pytest.mark.parametrize("role", ["cpu", "gpu"])
def test_compose_service_builds_its_own_dockerfile_from_the_repository(role):
    build = service(role)["build"]
    assert (REPO / build["context"]).resolve() == REPO
    assert build["dockerfile"] == SERVICES[role]["dockerfile"]
    assert (REPO / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("role", ["cpu", "gpu"])
def test_compose_service_port_command_healthcheck_and_image_agree(role):
    spec = interpolate(service(role))
    port = SERVICES[role]["port"]
    command = spec["command"]
    assert command[:2] == ["deepsynth", "serve"]
    assert command[command.index("--role") + 1] == role
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0"  # inside the container
    assert "--auto-resume" in command            # a restarted container continues its jobs
    other = "gpu" if role == "cpu" else "cpu"
    assert command[command.index(f"--{other}-service-url") + 1] == \
        f"http://127.0.0.1:{SERVICES[other]['port']}"
    # Published on the host's loopback only, on the same port number, by default.
    [published] = spec["ports"]
    host, host_port, container_port = published.rsplit(":", 2)
    assert host in LOOPBACK
    assert (int(host_port), int(container_port)) == (port, port)
    test = " ".join(spec["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/api/health" in test
    # The image's EXPOSE and HEALTHCHECK say the same.
    steps = instructions(SERVICES[role]["dockerfile"])
    assert ("EXPOSE", str(port)) in steps
    [health] = [arguments for keyword, arguments in steps if keyword == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/api/health" in health


def test_compose_ports_can_be_moved_and_published_on_all_interfaces_from_the_environment():
    environ = {"DEEPSYNTH_CPU_PORT": "6000", "DEEPSYNTH_GPU_PORT": "6001",
               "DEEPSYNTH_PUBLISH_ADDRESS": "0.0.0.0", "DEEPSYNTH_PUBLIC_HOST": "box"}
    cpu, gpu = interpolate(service("cpu"), environ), interpolate(service("gpu"), environ)
    assert cpu["ports"] == ["0.0.0.0:6000:5000"] and gpu["ports"] == ["0.0.0.0:6001:5001"]
    assert "http://box:6001" in cpu["command"] and "http://box:6000" in gpu["command"]
    assert cpu["environment"]["DEEPSYNTH_PUBLISH_ADDRESS"] == "0.0.0.0"


def test_compose_services_share_one_named_volume_as_their_data_root():
    mounts = {}
    for role in SERVICES:
        spec = interpolate(service(role))
        [volume] = spec["volumes"]
        source, target = volume.split(":")[:2]
        assert spec["environment"]["DEEPSYNTH_DATA_ROOT"] == target
        mounts[role] = (source, target)
        declared = compose(f"docker-compose.{role}.yml")["volumes"]
        assert source in declared, f"{role}: volume {source} is not declared"
        assert declared[source]["name"] == source  # the same volume whatever the project
    assert mounts["cpu"] == mounts["gpu"] == ("deepsynth-data", "/data")


@pytest.mark.parametrize("role", ["cpu", "gpu"])
def test_compose_service_environment_restart_and_stop_grace(role):
    spec = interpolate(service(role))
    environment = spec["environment"]
    # Tokens come from the environment of `docker compose` (a key without a value), never
    # from the file.
    assert environment["HF_TOKEN"] is None
    assert environment["DEEPSYNTH_API_TOKEN"] is None
    # Bound to 0.0.0.0 inside; loopback publishing is what keeps it private by default.
    assert environment["DEEPSYNTH_ALLOW_UNAUTHENTICATED"] == "1"
    assert environment["DEEPSYNTH_PUBLISH_ADDRESS"] in LOOPBACK
    assert spec["restart"] in ("unless-stopped", "always", "on-failure")
    assert spec.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = re.fullmatch(r"(\d+)s", spec["stop_grace_period"])
    assert grace and int(grace[1]) >= 70  # the server pauses jobs for up to 60 s
    health = spec["healthcheck"]
    assert health["test"][0] == "CMD" and health["retries"] >= 1


def test_compose_gpu_service_reserves_the_gpus():
    [device] = service("gpu")["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert device["driver"] == "nvidia"
    assert "deploy" not in service("cpu")


def test_docker_compose_yml_includes_both_files():
    main = compose("docker-compose.yml")
    assert sorted(main["include"]) == ["docker-compose.cpu.yml", "docker-compose.gpu.yml"]
    assert "services" not in main
    for name in main["include"]:
        assert (REPO / name).is_file()
    assert {compose(n)["name"] for n in main["include"]} == {main["name"]}


def test_every_variable_the_compose_files_read_is_documented():
    used = set()
    for name in ("docker-compose.cpu.yml", "docker-compose.gpu.yml"):
        text = (REPO / name).read_text(encoding="utf-8")
        used |= {m["name"] for m in VARIABLE.finditer(text)}
        used |= {k for k, v in service(name.split(".")[1])["environment"].items() if v is None}
    guide = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    assert used >= {"DEEPSYNTH_CPU_PORT", "DEEPSYNTH_GPU_PORT", "DEEPSYNTH_PUBLISH_ADDRESS",
                    "HF_TOKEN", "DEEPSYNTH_API_TOKEN"}
    assert not [name for name in used if f"`{name}`" not in guide]


def compose_binary() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                               check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return [shutil.which("docker-compose")] if shutil.which("docker-compose") else None


@pytest.mark.skipif(compose_binary() is None, reason="no docker compose binary installed")
@pytest.mark.parametrize("files", [["docker-compose.yml"],
                                   ["docker-compose.cpu.yml", "docker-compose.gpu.yml"]])
def test_docker_compose_config_accepts_the_files(files):
    command = compose_binary()
    for name in files:
        command += ["-f", name]
    result = subprocess.run([*command, "config", "--format", "json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert set(model["services"]) == {"cpu", "gpu"}
    assert list(model["volumes"]) == ["deepsynth-data"]


# ---------------------------------------------------------------------------------------------
# Dockerfiles and the build context

BASE_IMAGE = re.compile(r"(?P<image>[a-z0-9./_-]+):(?P<tag>[A-Za-z0-9._-]+)"
                        r"(?:@sha256:(?P<digest>[0-9a-f]{64}))?")


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_pins_its_base_image(dockerfile):
    """A version tag (optionally with its digest). Python by minor version: a frozen patch
    tag (3.11.11-slim) gets no security rebuilds. nvidia/cuda has no minor tags: its tag
    names the CUDA release."""
    bases = [arguments.split()[0] for keyword, arguments in instructions(dockerfile)
             if keyword == "FROM"]
    assert bases
    for base in bases:
        match = BASE_IMAGE.fullmatch(base)
        assert match, f"{base}: not image:tag[@sha256:digest]"
        tag = match["tag"]
        assert tag != "latest" and "$" not in base
        if match["image"] == "python":
            assert re.fullmatch(r"3\.\d+-slim-[a-z]+", tag), f"{base}: not a minor tag"
        else:
            assert re.match(r"\d+\.\d+\.\d+-", tag), f"{base}: the tag is not a version"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_apt_never_prompts(dockerfile):
    steps = instructions(dockerfile)
    first_apt = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "apt-get" in a)
    assert ("ARG", "DEBIAN_FRONTEND=noninteractive") in steps[:first_apt]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_runs_as_a_non_root_user(dockerfile):
    steps = instructions(dockerfile)
    users = [arguments for keyword, arguments in steps if keyword == "USER"]
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    if user.isdigit():  # the uid is created, and the data root belongs to it
        runs = " ".join(arguments for keyword, arguments in steps if keyword == "RUN")
        assert f"--uid {user}" in runs
        assert "chown" in runs and "/data" in runs
    # Everything after USER runs unprivileged: only metadata may follow it.
    after = [keyword for keyword, _ in steps[steps.index(("USER", users[-1])) + 1:]]
    assert set(after) <= {"VOLUME", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "ENV"}


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_copies_only_files_that_exist_and_reach_the_build_context(dockerfile):
    copies = [arguments for keyword, arguments in instructions(dockerfile)
              if keyword in ("COPY", "ADD")]
    assert copies
    for arguments in copies:
        assert "--from" not in arguments
        for source in copy_sources(arguments):
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: no such file"
            assert in_build_context(source), f"{dockerfile}: {source} is in .dockerignore"
            if (REPO / source).is_dir():
                files = [p for p in (REPO / source).rglob("*.py")
                         if "__pycache__" not in p.parts]
                assert files and all(in_build_context(str(p.relative_to(REPO)))
                                     for p in files)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_installs_dependencies_before_copying_the_source(dockerfile):
    steps = instructions(dockerfile)
    position = {}
    for index, (keyword, arguments) in enumerate(steps):
        if keyword == "COPY" and re.match(r"(src|web_ui)\b", arguments):
            position.setdefault("source", index)
        if keyword == "RUN" and "pip install -r" in arguments:
            position.setdefault("dependencies", index)
        if keyword == "RUN" and "torch==" in arguments:
            position.setdefault("torch", index)
        if keyword == "RUN" and "pip install --no-deps -e ." in arguments:
            position.setdefault("package", index)  # in place: one copy of the source
    assert position["torch"] < position["dependencies"] < position["source"] < \
        position["package"]
    # The dependency layer depends on pyproject.toml only (not the README or the source).
    copied_before = [a for k, a in steps[:position["dependencies"]] if k == "COPY"]
    assert all(re.fullmatch(r"(pyproject\.toml|scripts/pyproject_deps\.py) \S+", a)
               for a in copied_before), copied_before


# The CUDA builds published for each torch version the images may pin: index name (the
# download.pytorch.org/whl/<name> folder) -> CUDA version. download.pytorch.org cannot be
# reached from the development machine; the table was made from (a) PyPI, reached through
# pip: `pip install --dry-run --no-deps --report - torch==2.13.0` shows the Linux wheel
# requiring cuda-toolkit==13.0.3, so PyPI's default build, the one of the cu130 index, is
# CUDA 13.0; (b) issue 17, whose author reached the index: torch 2.13 is published for CUDA
# 12.6, 13.0 and 13.2 only (no cu128). Add a row when TORCH_VERSION moves.
TORCH_CUDA_BUILDS = {"2.13.0": {"cu126": "12.6", "cu130": "13.0", "cu132": "13.2"}}


def build_args(dockerfile: str) -> dict[str, str]:
    return dict(a.split("=", 1) for k, a in instructions(dockerfile) if k == "ARG" and "=" in a)


def test_dockerfiles_pin_torch_to_the_tested_version_and_a_build_that_exists():
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    tested = re.search(r"torch==([0-9.]+)", setup)[1]
    for dockerfile in ("Dockerfile", "Dockerfile.cpu"):
        assert build_args(dockerfile)["TORCH_VERSION"] == tested
    cpu = (REPO / "Dockerfile.cpu").read_text(encoding="utf-8")
    gpu = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "download.pytorch.org/whl/cpu" in cpu
    assert "fonts-dejavu-core" in cpu and "fonts-noto-cjk" in cpu
    assert 'download.pytorch.org/whl/${TORCH_CUDA}' in gpu
    [base] = [a for k, a in instructions("Dockerfile") if k == "FROM"]
    cuda = re.match(r"nvidia/cuda:(\d+\.\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+", base)[1]
    build = build_args("Dockerfile")["TORCH_CUDA"]
    published = TORCH_CUDA_BUILDS[tested]
    assert build in published, f"torch {tested} has no {build} build; it has {sorted(published)}"
    assert published[build] == cuda  # torch built for the base image's CUDA
    assert re.fullmatch(r"\d+\.\d+\.\d+", build_args("Dockerfile")["BITSANDBYTES_VERSION"])
    assert 'bitsandbytes==${BITSANDBYTES_VERSION}' in gpu


@pytest.mark.parametrize("dockerfile,role", [("Dockerfile.cpu", "cpu"), ("Dockerfile", "gpu")])
def test_dockerfile_command_serves_its_role_through_the_entrypoint(dockerfile, role):
    steps = dict(instructions(dockerfile))
    command = exec_form(steps["CMD"])
    assert command[command.index("--role") + 1] == role
    assert command[command.index("--port") + 1] == str(SERVICES[role]["port"])
    assert exec_form(steps["ENTRYPOINT"]) == ["/app/scripts/docker-entrypoint.sh"]
    assert "DEEPSYNTH_DATA_ROOT=/data" in steps["ENV"]


def healthcheck_commands(role: str) -> list[list[str]]:
    """The image's HEALTHCHECK command and the compose file's, as exec argument lists."""
    [health] = [a for k, a in instructions(SERVICES[role]["dockerfile"]) if k == "HEALTHCHECK"]
    image = exec_form(health.split(" CMD ", 1)[1])
    test = service(role)["healthcheck"]["test"]
    assert test[0] == "CMD"
    return [image, test[1:]]


@pytest.mark.parametrize("role", ["cpu", "gpu"])
def test_healthchecks_have_no_space_in_an_argument_and_answer_for_a_live_server(role,
                                                                                tmp_path):
    """Podman's Docker-compatible API splits a healthcheck argument at its spaces, so none
    may have one. The command itself is run against a real server: 0 while it answers,
    not 0 once it is gone."""
    from deepsynth.config.server import ServerConfig
    from tests.support.server import running

    commands = healthcheck_commands(role)
    assert commands[0] == commands[1]
    command = commands[0]
    assert not [argument for argument in command if " " in argument], command
    assert command[0] == "python"
    port = str(SERVICES[role]["port"])
    with running(ServerConfig(data_root=str(tmp_path / "data"))) as (_, base):
        live = [sys.executable, *(a.replace(f"http://127.0.0.1:{port}", base)
                                  for a in command[1:])]
        assert live != [sys.executable, *command[1:]]
        up = subprocess.run(live, capture_output=True, text=True, timeout=30, check=False)
        assert up.returncode == 0, up.stderr
    down = subprocess.run(live, capture_output=True, text=True, timeout=30, check=False)
    assert down.returncode != 0


def test_dockerignore_keeps_data_and_environments_out_of_the_build_context():
    for path in (".venv", ".venv/bin/python", "data", "data/datasets/x/data/t.parquet", ".git",
                 "test-artifacts", "tests/test_api.py", "demo-dataset/README.md",
                 "src/deepsynth/__pycache__/x.pyc", "deepsynth.egg-info/PKG-INFO"):
        assert not in_build_context(path), path
    for path in ("pyproject.toml", "README.md", "src/deepsynth/__init__.py",
                 "web_ui/app.py", "scripts/pyproject_deps.py", "scripts/docker-entrypoint.sh"):
        assert in_build_context(path), path


def test_entrypoint_refuses_public_publishing_without_a_token_and_execs_the_command(tmp_path):
    entrypoint = str(REPO / "scripts" / "docker-entrypoint.sh")
    base = {"PATH": os.environ["PATH"]}
    public = subprocess.run(["sh", entrypoint, "echo", "served"], capture_output=True,
                            text=True, check=False,
                            env={**base, "DEEPSYNTH_PUBLISH_ADDRESS": "0.0.0.0"})
    assert public.returncode != 0 and "DEEPSYNTH_API_TOKEN" in public.stderr
    for extra in ({}, {"DEEPSYNTH_PUBLISH_ADDRESS": "127.0.0.1"},
                  {"DEEPSYNTH_PUBLISH_ADDRESS": "0.0.0.0", "DEEPSYNTH_API_TOKEN": "t"}):
        ok = subprocess.run(["sh", entrypoint, "echo", "served"], capture_output=True,
                            text=True, check=False, env={**base, **extra})
        assert ok.returncode == 0 and ok.stdout == "served\n", (extra, ok.stderr)


def test_pyproject_deps_prints_what_the_images_install():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "pyproject_deps.py")],
                            capture_output=True, text=True, check=True)
    assert "torch>=2.4" in result.stdout.split("\n")
    assert not [line for line in result.stdout.split("\n") if "pytest" in line]


# ---------------------------------------------------------------------------------------------
# accelerate configurations

@pytest.mark.parametrize("name", ["multi_gpu.yaml", "fsdp.yaml", "deepspeed_zero2.yaml"])
def test_accelerate_config_loads_with_accelerates_own_parser(name):
    from accelerate.commands.config.config_args import (
        ClusterConfig,
        load_config_from_file,
    )
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )

    path = str(REPO / "configs" / "accelerate" / name)
    config = load_config_from_file(path)  # refuses unknown top-level keys
    assert isinstance(config, ClusterConfig)
    parser = launch_command_parser()
    known = {action.dest for action in parser._actions}
    for section in ("fsdp_config", "deepspeed_config"):
        unknown = [key for key in getattr(config, section) if key not in known]
        assert not unknown, f"{name}: {section} keys accelerate does not know: {unknown}"
    args = parser.parse_args(["--config_file", path, "-m", "deepsynth", "train"])
    args, _, _ = _validate_launch_command(args)
    assert args.module and args.training_script == "deepsynth"
    expected = {"multi_gpu.yaml": "multi_gpu", "fsdp.yaml": "use_fsdp",
                "deepspeed_zero2.yaml": "use_deepspeed"}[name]
    assert getattr(args, expected)
    if name == "fsdp.yaml":
        from accelerate.utils import prepare_multi_gpu_env
        env = prepare_multi_gpu_env(args)
        assert env["FSDP_VERSION"] == "2"
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"


# ---------------------------------------------------------------------------------------------
# Scripts

@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script):
    shell = "sh" if script.endswith("docker-entrypoint.sh") else "bash"
    result = subprocess.run([shell, "-n", str(REPO / script)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_pass_shellcheck():
    result = subprocess.run(["shellcheck", "-x", *SCRIPTS], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def script_environment(root: Path, cpu_port: int, gpu_port: int, **extra) -> dict:
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("DEEPSYNTH_", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))}
    return {**environ, "DEEPSYNTH_DATA_ROOT": str(root), "DEEPSYNTH_CPU_PORT": str(cpu_port),
            "DEEPSYNTH_GPU_PORT": str(gpu_port), "OMP_NUM_THREADS": "1", **extra}


def run_script(name: str, environ: dict, *args: str, timeout: float = 400):
    return subprocess.run(["bash", str(REPO / name), *args], capture_output=True, text=True,
                          env=environ, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL,
                          check=False)


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def get_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def alive(pid: int) -> bool:
    """Running, not exited (an exited child waiting for init to reap it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_start_all_starts_both_services_and_stop_all_stops_them(tmp_path):
    root = tmp_path / "data"
    cpu_port, gpu_port = free_ports(2)
    environ = script_environment(root, cpu_port, gpu_port)
    pids: list[int] = []
    try:
        started = run_script("start-all.sh", environ)
        assert started.returncode == 0, started.stdout + started.stderr
        pids = [int((root / "run" / f"{role}.pid").read_text()) for role in ("cpu", "gpu")]
        assert all(alive(pid) for pid in pids)
        assert f"http://127.0.0.1:{cpu_port}" in started.stdout
        assert f"http://127.0.0.1:{gpu_port}" in started.stdout
        # The script says where training runs (here, without a GPU: the CPU, tiny models only).
        gpu = shutil.which("nvidia-smi") is not None
        assert ("GPU:" if gpu else "tiny models only") in started.stdout + started.stderr
        assert "HF_TOKEN is not set" in started.stderr
        for role, port in (("cpu", cpu_port), ("gpu", gpu_port)):
            health = get_json(port, "/api/health")
            assert (health["status"], health["role"]) == ("ok", role)
            assert (root / "run" / f"{role}.log").stat().st_size > 0
        # One data root: the training service sees the demo dataset the script rendered.
        names = [d["name"] for d in get_json(gpu_port, "/api/datasets")["datasets"]]
        assert "scitldr-demo" in names
        # Each service's pages link to the other one where it really is.
        assert f"http://127.0.0.1:{gpu_port}" in get_text(cpu_port, "/")
        assert f"http://127.0.0.1:{cpu_port}" in get_text(gpu_port, "/train")

        again = run_script("start-all.sh", environ)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already running") == 2
        assert [int((root / "run" / f"{r}.pid").read_text()) for r in ("cpu", "gpu")] == pids
        status = run_script("start-all.sh", environ, "status")
        assert status.returncode == 0 and status.stdout.count("(healthy)") == 2

        stopped = run_script("stop-all.sh", environ, timeout=200)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "Stopped the cpu service." in stopped.stdout
        assert "Stopped the gpu service." in stopped.stdout
        assert not [pid for pid in pids if alive(pid)]
        assert port_free(cpu_port) and port_free(gpu_port)
        assert not list((root / "run").glob("*.pid"))
        assert run_script("start-all.sh", environ, "status").returncode != 0
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_busy_port_is_refused_with_a_clear_message(tmp_path):
    root = tmp_path / "data"
    cpu_port, gpu_port = free_ports(2)
    environ = script_environment(root, cpu_port, gpu_port, DEEPSYNTH_SKIP_DEMO="1")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", cpu_port))
        holder.listen()
        started = time.monotonic()
        result = run_script("start-dataset-generation.sh", environ, timeout=60)
        assert result.returncode != 0
        assert f"port {cpu_port} for the cpu service is already in use" in result.stderr
        assert "DEEPSYNTH_CPU_PORT=" in result.stderr      # how to choose another one
        assert time.monotonic() - started < 30             # refused before any set-up
        assert not list(root.glob("run/*.pid"))
    bad = run_script("start-all.sh", {**environ, "DEEPSYNTH_GPU_PORT": str(cpu_port)})
    assert bad.returncode != 0 and "need two ports" in bad.stderr
    bad = run_script("start-all.sh", {**environ, "DEEPSYNTH_CPU_PORT": "http"})
    assert bad.returncode != 0 and "not a number" in bad.stderr


def test_a_service_that_fails_to_start_is_reported_and_nothing_is_left_running(tmp_path):
    root = tmp_path / "data"
    cpu_port, gpu_port = free_ports(2)
    environ = script_environment(root, cpu_port, gpu_port, DEEPSYNTH_SKIP_DEMO="1")
    # Extra serve options go to both services; this one is out of range, so both exit.
    result = run_script("start-all.sh", environ, "--", "--threads", "1")
    assert result.returncode == 1
    assert "exited while starting" in result.stderr
    assert "threads must be between 4 and 256" in result.stderr   # the end of its log
    assert not list(root.glob("run/*.pid"))
    assert port_free(cpu_port) and port_free(gpu_port)


def test_scripts_refuse_a_public_address_without_a_token(tmp_path):
    cpu_port, gpu_port = free_ports(2)
    environ = script_environment(tmp_path, cpu_port, gpu_port, DEEPSYNTH_HOST="0.0.0.0",
                                 DEEPSYNTH_SKIP_DEMO="1")
    result = run_script("start-model-training.sh", environ, timeout=60)
    assert result.returncode != 0 and "DEEPSYNTH_API_TOKEN" in result.stderr
    assert not list(tmp_path.glob("run/*.pid"))


def test_usage_and_unknown_arguments():
    help_text = run_script("start-all.sh", dict(os.environ), "--help", timeout=30)
    assert help_text.returncode == 0 and "--docker" in help_text.stdout
    wrong = run_script("start-all.sh", dict(os.environ), "--frobnicate", timeout=30)
    assert wrong.returncode == 2 and "unknown argument '--frobnicate'" in wrong.stderr
