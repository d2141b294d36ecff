"""``python -m doqu``: the doqu command line."""

from __future__ import annotations

from doqu.cli import main

if __name__ == "__main__":
    main()
