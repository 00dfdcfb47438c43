"""What the container smoke test needs around a real engine (podman): a local base image made
with debootstrap, a wheelhouse, the flags this machine's kernel wants, and a build of
Dockerfile.cpu from a copy of the build context.

Container registries are not reachable from the development machine, so ``python:3.11-slim``
cannot be pulled: the base is a minimal Debian bookworm with Debian's Python 3.11 in a venv at
/opt/python (on PATH, so ``python`` and ``pip`` are what the slim image has in
/usr/local/bin), made with debootstrap from deb.debian.org and kept in the engine's image
store under BASE_IMAGE, so later runs reuse it. download.pytorch.org is not reachable either:
the build gets its wheels from a wheelhouse (cached under CACHE, made with the host's pip:
the CPU build of torch from a folder of the host's pip ``find-links``, the rest from PyPI),
through a pip.conf mounted at build time (``no-index``: every ``pip install`` of the
Dockerfile, the torch line too, reads the wheelhouse). In the copy of the build context only
the FROM line of Dockerfile.cpu changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BASE_IMAGE = "localhost/deepsynth-smoke-base:bookworm-py311"
IMAGE = "localhost/deepsynth-cpu:smoke"
CACHE = Path(os.environ.get("DEEPSYNTH_CONTAINER_CACHE",
                            Path.home() / ".cache" / "deepsynth-container-smoke"))
# What the build context holds (.dockerignore lets only these in).
CONTEXT = ["pyproject.toml", "README.md", "src", "web_ui", "scripts/pyproject_deps.py",
           "scripts/docker-entrypoint.sh", ".dockerignore", "Dockerfile.cpu"]
PATH = "/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """The smoke test cannot run here; the message says why (it becomes the skip reason)."""


def run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          check=False, **kwargs)


def left(deadline: float) -> float:
    """Seconds to the deadline (time.monotonic()); a step past it times out at once."""
    return max(deadline - time.monotonic(), 0.1)


def engine() -> str:
    """podman, when it is installed and works as this user; else Unavailable."""
    podman = shutil.which("podman")
    if podman is None:
        raise Unavailable("no container engine: podman is not installed (as root, "
                          "scripts/setup.sh --browser installs podman, buildah, debootstrap)")
    info = run([podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"], 60)
    if info.returncode:
        raise Unavailable(f"podman cannot run here: {info.stderr.strip()[-300:]}")
    return podman


def run_group(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """run(), in a session of its own, the whole of which is killed on a timeout (debootstrap
    is a shell script: its dpkg children would go on without it)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def unmount_below(folder: Path) -> None:
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(f"{folder}/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def base_image(podman: str, deadline: float) -> float:
    """Make BASE_IMAGE unless the image store has it; returns the seconds it took."""
    if run([podman, "image", "exists", BASE_IMAGE], 30).returncode == 0:
        return 0.0
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None or os.getuid() != 0:
        raise Unavailable("no base image: making one needs debootstrap, as root")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deepsynth-rootfs-") as folder:
        rootfs = Path(folder) / "rootfs"
        try:
            made = run_group([debootstrap, "--variant=minbase",
                              "--include=python3.11,python3.11-venv,python3-pip,ca-certificates",
                              "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                             left(deadline))
        finally:
            unmount_below(rootfs)   # what debootstrap mounted (proc, sys), before any rmtree
        if made.returncode:
            raise Unavailable(f"debootstrap failed: {made.stdout[-300:]}{made.stderr[-300:]}")
        venv = run(["chroot", str(rootfs), "/usr/bin/python3.11", "-m", "venv", "/opt/python"],
                   left(deadline))
        assert venv.returncode == 0, venv.stderr
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = run([podman, "import", "--change", f"ENV PATH={PATH}", "--change",
                        'CMD ["python"]', "-", BASE_IMAGE], left(deadline), stdin=tar.stdout)
        tar.wait()
        assert imported.returncode == 0, imported.stderr
    return time.monotonic() - started


def run_flags(podman: str) -> list[str]:
    """The flags `podman run` and `podman build` need here, found by trying: this VM's
    kernel has cgroups in hybrid mode (crun refuses; runc works) and no CAP_SYS_RESOURCE
    (podman's default rlimits are higher than the hard limits: lowered ones work)."""
    limit = min(4096, os.sysconf("SC_OPEN_MAX"))
    lowered = [f"--ulimit=nofile={limit}:{limit}", "--ulimit=nproc=4096:4096"]
    variants = [[], lowered]
    if shutil.which("runc"):
        variants += [["--runtime=runc"], ["--runtime=runc", *lowered]]
    errors = []
    for flags in variants:
        tried = run([podman, "run", "--rm", *flags, BASE_IMAGE, "python", "-c", "pass"], 120)
        if tried.returncode == 0:
            return flags
        errors.append(tried.stderr.strip()[-200:])
    raise Unavailable("podman cannot start a container here: " + " | ".join(errors))


def find_torch_wheel(version: str) -> Path | None:
    """The CPU build of torch among the folders the host's pip finds links in."""
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    configured = run([sys.executable, "-m", "pip", "config", "list"], 60).stdout
    folders += re.findall(r"find-links='([^']+)'", configured)
    for folder in folders:
        folder = folder.removeprefix("file://")
        for wheel in Path(folder).glob(f"torch-{version}+cpu-cp311-*.whl") \
                if Path(folder).is_dir() else []:
            return wheel
    return None


def wheelhouse(requirements: list[str], torch_version: str, deadline: float) -> Path:
    """CACHE/wheelhouse-<hash of the requirements>: every wheel the image installs."""
    key = hashlib.sha256("\n".join([torch_version, *requirements]).encode()).hexdigest()[:12]
    folder = CACHE / f"wheelhouse-{key}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch = find_torch_wheel(torch_version)
    if torch is None:
        fetched = run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder),
                       f"torch=={torch_version}", "--index-url",
                       "https://download.pytorch.org/whl/cpu"], left(deadline))
        if fetched.returncode:
            raise Unavailable(f"no CPU build of torch {torch_version}: none in pip's "
                              "find-links folders, and download.pytorch.org is unreachable")
    else:
        shutil.copy2(torch, folder)
    fetched = run([sys.executable, "-m", "pip", "download", "-q", "-d", str(folder),
                   "--find-links", str(folder), f"torch=={torch_version}", *requirements,
                   "setuptools>=69", "wheel"], left(deadline))
    if fetched.returncode:
        raise Unavailable(f"pip download of the image's requirements failed (is PyPI "
                          f"reachable?): {fetched.stderr.strip()[-300:]}")
    (folder / ".complete").touch()
    return folder


def build_context(target: Path) -> Path:
    """A copy of the build context in which only Dockerfile.cpu's FROM line changes."""
    for name in CONTEXT:
        source = REPO / name
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, destination)
    dockerfile = target / "Dockerfile.cpu"
    original = dockerfile.read_text(encoding="utf-8")
    changed = re.sub(r"(?m)^FROM \S+", f"FROM {BASE_IMAGE}", original, count=1)
    assert changed != original
    dockerfile.write_text(changed, encoding="utf-8")
    return target


def build(podman: str, flags: list[str], context: Path, wheels: Path, timeout: float) -> float:
    """Build IMAGE from the copied context, pip reading only the wheelhouse; seconds taken."""
    pip_conf = context.parent / "pip.conf"
    pip_conf.write_text("[global]\nno-index = true\nfind-links = /wheelhouse\n")
    started = time.monotonic()
    # Docker's image format: the OCI format has no HEALTHCHECK, so podman would drop it.
    built = run([podman, "build", *flags, "--format=docker", "--pull=never",
                 "-f", str(context / "Dockerfile.cpu"),
                 "-v", f"{wheels}:/wheelhouse:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro",
                 "-t", IMAGE, str(context)], timeout)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-2000:]
    return time.monotonic() - started
