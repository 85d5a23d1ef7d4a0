"""``python -m benchmarks [--quick] [--only NAME ...] [--out FILE]``: run, print the table, write JSON."""

from __future__ import annotations

import sys

from benchmarks.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
