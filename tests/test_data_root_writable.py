"""A data root the server cannot write is refused at start with one line that names the uid
to ``chown`` it to (a bind-mounted host folder owned by another uid used to end in a
PermissionError traceback)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@contextlib.contextmanager
def unwritable(folder: Path):
    """A folder this process cannot write in. Root writes through any mode, but not into an
    immutable folder (chattr +i), so as root the test uses that."""
    folder.mkdir()
    if os.getuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("running as root, and chattr +i cannot make a folder unwritable here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("nested", [False, True], ids=["existing-root", "root-to-create"])
def test_serve_refuses_a_data_root_it_cannot_write_naming_the_uid(tmp_path, nested):
    folder = tmp_path / "host-folder"
    data_root = folder / "data" if nested else folder
    environ = {k: v for k, v in os.environ.items() if k != "DEEPSYNTH_API_TOKEN"}
    with unwritable(folder):
        result = subprocess.run(
            [sys.executable, "-m", "deepsynth.cli.main", "serve", "--role", "cpu",
             "--port", "5999"], capture_output=True, text=True, timeout=120, check=False,
            env={**environ, "DEEPSYNTH_DATA_ROOT": str(data_root)})
    uid = os.getuid()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"{data_root} is not writable by this process, uid {uid}" in line
    assert f"chown -R {uid}:{os.getgid()}" in line and "DEEPSYNTH_DATA_ROOT" in line
