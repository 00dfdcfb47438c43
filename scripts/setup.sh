#!/usr/bin/env bash
# Idempotent set-up shared by run-tests.sh and start-all.sh: a virtual environment in .venv
# with DeepSynth installed, and (as root) the system fonts the renderer falls back to.
# With --browser (the tests), also Debian's Chromium for the UI tests (Playwright drives it
# through its executable path: `playwright install` would download a browser).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

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
if ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing fonts-noto-cjk"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk fontconfig >/dev/null
    else
        echo "setup: warning: Noto CJK fonts are missing (apt-get install fonts-noto-cjk);" \
             "CJK text will render as empty boxes and the font tests will fail" >&2
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
