# Sourced by scripts/run and scripts/test: make .venv (Python >= 3.11) and install the project.
# Usage: ensure_venv "<extras>"   (e.g. "" or "dev")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "error: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

ensure_venv() {
    local extras="$1" spec="." stamp
    [ -n "$extras" ] && spec=".[$extras]"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating $VENV" >&2
        "$(find_python)" -m venv "$VENV"
    fi
    # Reinstall only when the project's metadata or the extras changed.
    stamp="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
    if [ "$(cat "$VENV/.installed" 2>/dev/null || true)" != "$stamp" ]; then
        echo "installing processgpt$([ -n "$extras" ] && echo "[$extras]") into .venv" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$([ "$spec" = "." ] || echo "${spec#.}")" >&2
        echo "$stamp" > "$VENV/.installed"
    fi
}

# The console's browser tests drive Debian's chromium (tests/console). Installed when missing
# and apt-get can run without asking (root, or sudo without a password); otherwise those
# tests are skipped and say why. PROCESSGPT_CHROMIUM names another binary.
ensure_chromium() {
    local browser="${PROCESSGPT_CHROMIUM:-/usr/bin/chromium}"
    [ -x "$browser" ] && return 0
    command -v apt-get >/dev/null 2>&1 || { echo "no $browser and no apt-get: browser tests will be skipped" >&2; return 0; }
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || { echo "no $browser (install the chromium package): browser tests will be skipped" >&2; return 0; }
        sudo="sudo -n"
    fi
    echo "installing chromium (Debian package) for the console's browser tests" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 ||
        { $sudo apt-get update -q >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }
}
