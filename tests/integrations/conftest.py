"""Fixtures of the integration tests: the reward-server helpers of tests/serve."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_helpers import short_templates  # noqa: E402,F401 (fixture)
