"""Shared fixtures. The repo root is importable so tests use the program's own modules."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STACKS = ("dev", "local")
