"""The one exception every checkpoint reader and loader raises."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""
