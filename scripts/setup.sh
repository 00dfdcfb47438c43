#!/usr/bin/env bash
# Idempotent set-up shared by run-tests.sh and start-all.sh: a virtual environment in .venv
# with DeepSynth installed, and (as root) the system fonts the renderer falls back to.
# With --browser (the tests), also Debian's Chromium for the UI tests (Playwright drives it
# through its executable path: `playwright install` would download a browser).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The interpreter: $PYTHON, else the newest python3.N on PATH that runs and is 3.11 or newer
# (pyproject's requires-python; the tests run on 3.11). Run, not only found: a pyenv shim of
# a version that is not selected is on PATH but exits with an error.
supported() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }
if [ -z "${PYTHON:-}" ]; then
    for minor in $(seq 30 -1 11); do
        if command -v "python3.$minor" >/dev/null 2>&1 && supported "python3.$minor"; then
            PYTHON="python3.$minor"
            break
        fi
    done
    PYTHON="${PYTHON:-python3}"
fi
if [ ! -x .venv/bin/python ] && ! supported "$PYTHON"; then
    echo "setup: error: DeepSynth needs Python 3.11 or newer; $PYTHON is not (set PYTHON)" >&2
    exit 2
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# The extras installed: the tests (run-tests.sh passes --browser) also need the Ray engine.
# One stamp per set of extras, so a dev-only install is not taken for one with Ray.
extras=(dev)
[ "${1:-}" = "--browser" ] && extras=(dev ray)
extra_list=$(IFS=,; echo "${extras[*]}")
stamp=".venv/.deepsynth-installed-${extra_list//,/-}"
if { [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; } && [ -x .venv/bin/deepsynth ] \
        && .venv/bin/python scripts/pyproject_deps.py --check "${extras[@]/#/--extra=}" >/dev/null 2>&1; then
    # pyproject.toml is newer than the stamp (an edit, a checkout) but what it asks for is
    # installed already: reuse the environment as it is.
    touch "$stamp"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing DeepSynth and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    # The CPU build of torch, pinned: an unpinned torch would pull a multi-gigabyte CUDA build.
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    .venv/bin/python -m pip install --quiet -e ".[$extra_list]"
    touch "$stamp"
fi

# Noto CJK lets the renderer draw Chinese, Japanese and Korean; the tests check that it does.
# fc-list's whole output goes through grep (no -q: under pipefail, grep -q quitting early
# makes fc-list die of SIGPIPE, and the check fail, now and then).
if ! fc-list : family 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing fonts-noto-cjk"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk fontconfig >/dev/null
    else
        echo "setup: warning: Noto CJK fonts are missing (apt-get install fonts-noto-cjk);" \
             "CJK text will render as empty boxes and the font tests will fail" >&2
    fi
fi

# Tesseract reads rendered pages back (the OCR round trips of right-to-left and shaped
# scripts); Lohit Devanagari draws Devanagari. Optional: without them those tests skip.
if ! command -v tesseract >/dev/null 2>&1 || [ ! -d /usr/share/fonts/truetype/lohit-devanagari ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing tesseract-ocr (ara, heb, hin) and fonts-lohit-deva"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            tesseract-ocr tesseract-ocr-ara tesseract-ocr-heb tesseract-ocr-hin \
            fonts-lohit-deva; } >/dev/null || echo "setup: warning: tesseract-ocr could not" \
            "be installed; the OCR round-trip tests will skip" >&2
    else
        echo "setup: warning: tesseract-ocr is missing (apt-get install tesseract-ocr" \
             "tesseract-ocr-ara tesseract-ocr-heb tesseract-ocr-hin fonts-lohit-deva);" \
             "the OCR round-trip tests will skip" >&2
    fi
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chromium (for the browser tests)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup: warning: /usr/bin/chromium is missing (apt-get install chromium);" \
             "the browser tests will fail" >&2
    fi
fi

# The deployment tests lint the start scripts with ShellCheck (skipped, and said so, without it).
if [ "${1:-}" = "--browser" ] && ! command -v shellcheck >/dev/null 2>&1 \
        && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing shellcheck (for the deployment tests)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null \
        || echo "setup: warning: shellcheck could not be installed" >&2
fi

# The container smoke test (tests/test_container_smoke.py) builds and runs Dockerfile.cpu with
# podman, from a base image made with debootstrap; runc, because crun refuses cgroups in
# hybrid mode. Best effort: without them that test is skipped, and says so.
if [ "${1:-}" = "--browser" ] && ! command -v podman >/dev/null 2>&1 \
        && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing podman, buildah, debootstrap, runc (for the container smoke test)"
    { apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah debootstrap \
            runc >/dev/null; } \
        || echo "setup: warning: podman could not be installed; the container smoke test" \
                "will be skipped" >&2
fi
