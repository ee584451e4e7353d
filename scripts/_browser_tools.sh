# Tools the browser tests use, never the app: axe-core from npm into tests/browser_tools.
# Sourced by scripts/test; installs once, again only when the pinned version changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
axe_version="4.14.1"
tools="$root/tests/browser_tools"
if [ ! -f "$tools/node_modules/axe-core/.version-$axe_version" ]; then
    if command -v npm >/dev/null 2>&1; then
        if npm install --prefix "$tools" --no-save --no-audit --no-fund --silent \
            "axe-core@$axe_version"; then
            touch "$tools/node_modules/axe-core/.version-$axe_version"
        else
            echo "axe-core could not be installed: the accessibility checks will fail" >&2
        fi
    else
        echo "npm is missing: the accessibility tests skip here and fail in CI (apt-get install npm)" >&2
    fi
fi
