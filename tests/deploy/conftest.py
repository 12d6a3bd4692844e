"""Fixtures for the deployment tests; the tiny models are in tests/support/deploy_models.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnx")


@pytest.fixture(scope="session")
def deploy_models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deploy_models")
