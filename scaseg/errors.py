"""The errors the PyTorch side raises on a user's checkpoint or model settings.

Both are bad input (runtime/errors.py's UserInputError: exit 2 in every CLI) and ValueErrors, so
API callers can catch either way. runtime/errors.py and runtime/budgets.py are dependency-free
contracts, like runtime/atomic.py; they are all this package takes from the runtime.
"""

from runtime.errors import UserInputError


class CheckpointError(UserInputError):
    """A checkpoint that cannot be read, exceeds a reader's budget, or does not fit the model."""


class ModelConfigError(UserInputError):
    """Model settings (variant, input size, ablation switches) outside what the model supports."""
