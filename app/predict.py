"""The batch command line's earlier name: `python -m app.predict` runs `python -m app.predict_cli`
(renamed when app/ was reorganised), so that a lab's existing scripts keep working."""

from __future__ import annotations

import sys

from app.predict_cli import main

if __name__ == "__main__":
    print("note: `python -m app.predict` is now `python -m app.predict_cli`", file=sys.stderr)
    sys.exit(main())
