"""The base class of every "your input is wrong" error, so the CLIs can recognise bad input by type.

Library modules raise subclasses of it (MetaError, SourceError, CalibrationDataError, ...); the CLIs
map it to exit code 2 (runtime/cli_errors.py). It is a ValueError, so API callers that catch
ValueError keep working. Importing this module costs nothing: no third-party imports.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input: a flag or argument, a path, or the content of a file the caller gave."""
