"""Every user-facing error type, and the set the CLI reports as one line instead of a traceback.

All of the package's error classes are defined here and imported from here, so this module
imports nothing of the package: every layer can use it without depending on another.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad option or argument value; the message names it and the accepted values."""


class OutputError(RuntimeError):
    """A report that could not be written after the run; the message says where the results are."""


class DataError(RuntimeError):
    """A dataset that is missing, unreadable or malformed; the message says what to do."""


class ModelFileError(DataError):
    """A model file that is missing or cannot be read."""


class CompositionError(ValueError):
    """A formula or matrix that does not fit the codec; the message names the value."""


class OxidationStateError(ValueError):
    """An oxidation-state set SMACT does not ship."""


class TargetError(ValueError):
    """A target or sort expression that cannot be parsed; the message is one line."""


class FilterError(RuntimeError):
    """A custom filter that raised or returned something other than a boolean mask."""


def user_errors() -> tuple[type[Exception], ...]:
    """Every error type whose message is meant for the user as it stands."""
    return (ConfigError, DataError, CompositionError, OxidationStateError, FilterError, OutputError,
            TargetError)
