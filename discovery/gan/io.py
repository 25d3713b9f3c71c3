"""Loading saved Keras models with one-line errors for missing or corrupt files."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import keras

from discovery.data import DataError

log = logging.getLogger(__name__)


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
        # Keras' own text misleads here (a damaged file is reported as "File not found"), so
        # the reason is what we can tell from the archive itself; Keras' text goes to the log.
        log.debug("keras could not load %s: %s: %s", p, type(exc).__name__, exc)
        raise ModelFileError(f"model file {str(p)!r} is corrupt or not a Keras model "
                             f"({_archive_problem(p)})") from None


def _archive_problem(path: Path) -> str:
    """Why a ``.keras`` file (a zip archive) did not load, in the file's own terms."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return "not a zip archive: truncated or overwritten"
    except Exception as exc:  # zlib errors while reading a member
        return f"damaged zip archive ({type(exc).__name__})"
    if bad is not None:
        return f"damaged zip archive: member {bad!r} fails its checksum"
    missing = {"config.json", "model.weights.h5"} - names
    if missing:
        return f"zip archive without {', '.join(sorted(missing))}"
    return "its config or weights do not match a model this package builds"
