"""Fixtures of the reward-server tests (defined in serve_helpers, shared with tests/integrations)."""

from serve_helpers import short_templates  # noqa: F401 (fixture)
