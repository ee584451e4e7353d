# Shared by scripts/serve and scripts/test: make .venv if missing and install the
# project with the extras asked for, at the versions pinned in constraints.txt, again only
# when pyproject.toml or constraints.txt changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
constraints="$root/constraints.txt"
inputs="$(cat "$root/pyproject.toml" "$constraints" | sha256sum | cut -c1-16)"
stamp="$venv/.installed-$(echo "$extras" | tr ',' '-')-$inputs"
if [ ! -f "$stamp" ]; then
    spec="$root"
    [ -n "$extras" ] && spec="$root[$extras]"
    "$venv/bin/python" -m pip install --quiet --constraint "$constraints" -e "$spec"
    touch "$stamp"
fi
