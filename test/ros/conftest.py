"""test/ros: the node's own tests; the shared DDS helpers live in test/ros_probe.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
