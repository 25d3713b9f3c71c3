"""The package's user-facing error types, gathered for the CLI's one-line reporting."""

from __future__ import annotations

from discovery.data import DataError
from discovery.encoding import CompositionError

USER_ERRORS: tuple[type[Exception], ...] = (DataError, CompositionError)
