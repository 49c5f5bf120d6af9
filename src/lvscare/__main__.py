"""`python -m lvscare` and the zipapp's entry point."""

from __future__ import annotations

import sys

from lvscare.cli import main

if __name__ == "__main__":
    sys.exit(main())
