"""`python -m ranvier`: the operations CLI."""

from __future__ import annotations

from ranvier.cli import main

if __name__ == "__main__":
    main()
