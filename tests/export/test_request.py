"""The export request: counts that would cost hours are refused before anything runs."""

from __future__ import annotations

import pytest


def test_a_calibration_or_gate_frame_count_past_the_frame_budget_is_refused():
    from export.request import ExportRequest
    from runtime.errors import BudgetError

    with pytest.raises(BudgetError, match="--calib-samples needs 1,000,000,000 frames"):
        ExportRequest(calib_samples=10**9)
    with pytest.raises(BudgetError, match="--verify-frames"):
        ExportRequest(verify_frames=10**9)
