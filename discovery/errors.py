"""User-facing error types, and the set the CLI reports as one line instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad option or argument value; the message names it and the accepted values."""


class OutputError(RuntimeError):
    """A report that could not be written after the run; the message says where the results are."""


def user_errors() -> tuple[type[Exception], ...]:
    """Every error type whose message is meant for the user as it stands."""
    from discovery.data import DataError
    from discovery.encoding import CompositionError
    from discovery.filters.chemistry import OxidationStateError
    from discovery.pipeline import FilterError

    errors: list[type[Exception]] = [ConfigError, DataError, CompositionError, OxidationStateError,
                                     FilterError, OutputError]
    try:
        from discovery.targets import TargetError

        errors.append(TargetError)
    except ImportError:  # pragma: no cover - while targets is being written
        pass
    return tuple(errors)
