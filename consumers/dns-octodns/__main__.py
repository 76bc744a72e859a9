"""Entry point: ``consumer.build()`` (see consumer.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

import consumer  # noqa: E402

consumer.build()
