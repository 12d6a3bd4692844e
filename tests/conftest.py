"""Run-wide test options: SKIP_SLOW=1 deselects the tests marked `slow`."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    value = os.environ.get("SKIP_SLOW", "")
    if value in ("", "0"):
        return
    if value != "1":
        raise pytest.UsageError(f"SKIP_SLOW must be 1 (skip slow tests) or 0/unset, got {value!r}")
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
