"""Loading saved Keras models with one-line errors for missing or corrupt files."""

from __future__ import annotations

from pathlib import Path

import keras

from discovery.data import DataError


class ModelFileError(DataError):
    """A model file that is missing or cannot be read."""


def load_keras_model(path: Path | str) -> keras.Model:
    """Load a ``.keras`` file saved by this package; raise ModelFileError naming the file."""
    import discovery.gan.models  # noqa: F401  (registers the custom layers)

    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file {str(p)!r} not found")
    try:
        return keras.models.load_model(p, compile=False)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"model file {str(p)!r} is corrupt or not a Keras model ({reason})") from None
