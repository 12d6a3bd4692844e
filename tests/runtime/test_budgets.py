"""The reader budgets: one table, overridable by environment, documented where users look."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.budgets import BUDGETS, budget, check
from runtime.errors import BudgetError, UserInputError

DOC = Path(__file__).resolve().parents[2] / "docs" / "untrusted_input.md"


def test_a_breach_names_the_limit_and_the_variable_that_raises_it():
    with pytest.raises(BudgetError, match=r"needs 5,000 classes, over the limit of 4,096 classes; "
                       r".*SCASEG_MAX_CLASSES=5000"):  # fmt: skip
        check("classes", 5000, "classes.txt")
    assert check("classes", 4096, "classes.txt") == 4096


def test_the_environment_raises_a_limit_and_a_bad_value_is_bad_input(monkeypatch):
    monkeypatch.setenv("SCASEG_MAX_CLASSES", "10_000")
    assert budget("classes").limit == 10_000
    for bad in ("-1", "0", "lots", "1e9"):
        monkeypatch.setenv("SCASEG_MAX_CLASSES", bad)
        with pytest.raises(UserInputError, match="SCASEG_MAX_CLASSES"):
            _ = budget("classes").limit


def test_every_budget_is_documented_for_users():
    rows = set(re.findall(r"^\| `(SCASEG_MAX_[A-Z_]+)` \|", DOC.read_text(), re.MULTILINE))
    assert rows == {b.env for b in BUDGETS.values()}
