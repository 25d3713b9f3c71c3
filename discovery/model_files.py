"""Model files: where the shipped models live, and reading and writing ``.keras`` files and
model cards with one-line errors.

Neutral ground for every model family: generators (GAN, language model, pattern WGAN) and
rankers (property ensembles, stacks, domain classifiers) load and save through here, so the
ranking side does not depend on a generator's modules. It imports only ``errors``, and Keras
(TensorFlow) only when a file is read or written: the locations are read before any model loads.
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from discovery.errors import ConfigError, ModelFileError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent / "models"
"""The shipped models, one folder each (``bandgap``, ``gan``, ``lm``, ...)."""
SHIPPED_GAN_DIR = MODELS_DIR / "gan"
SHIPPED_EMBEDDING = SHIPPED_GAN_DIR / "T.npy"
"""The atom embedding T [85, d] read from the shipped GAN critic: the property models' features."""
SHIPPED_LM_DIR = MODELS_DIR / "lm"

WEIGHTS_DTYPES = ("float32", "float16")

__all__ = ["MODELS_DIR", "SHIPPED_EMBEDDING", "SHIPPED_GAN_DIR", "SHIPPED_LM_DIR", "WEIGHTS_DTYPES",
           "ModelFileError", "load_keras_model", "save_without_optimizer", "weights_rounding", "write_card"]


def load_keras_model(path: Path | str) -> keras.Model:
    """Load a ``.keras`` file saved by this package; raise ModelFileError naming the file.

    Custom layers must be registered first: the caller imports the module that defines them
    (``discovery.gan.models`` for the GAN critic, ``discovery.attention`` for attention models),
    so this module depends on no model family."""
    import keras

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


def weights_rounding(before: np.ndarray, after: np.ndarray, y: np.ndarray,
                     weights_dtype: str = "float16") -> dict[str, float]:
    """What storing the weights as ``weights_dtype`` did to a model's predictions on one split
    (``before``/``after``: float32 and stored weights' predictions, ``y``: the truth); the
    model card's ``training.weights_rounding``."""
    return {"val_mae_float32": float(np.abs(before - y).mean()),
            f"val_mae_{weights_dtype}": float(np.abs(after - y).mean()),
            "max_abs_change": float(np.abs(after - before).max()),
            "mean_abs_change": float(np.abs(after - before).mean())}


def save_without_optimizer(model: keras.Model, path: Path, weights_dtype: str = "float32") -> None:
    """Save ``model`` for inference only: rebuilt from its config, so uncompiled (Keras 3's
    clone_model keeps the optimizer), a third of the bytes of a compiled save. With
    ``weights_dtype="float16"`` the weights are stored as float16 (half the bytes) and still
    computed in float32: Keras casts them as it loads. The file is written whole or not at all."""
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ConfigError(f"weights_dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {weights_dtype!r}")
    path = Path(path)
    weights = model.get_weights()
    if weights_dtype == "float16":
        limit = float(np.finfo(np.float16).max)
        big = [w for w in weights if w.dtype == np.float32 and np.abs(w).max(initial=0) > limit]
        if big:
            raise ConfigError(f"a weight of {float(np.abs(big[0]).max()):.4g} overflows float16 "
                              f"(max {limit:.0f}): save this model as float32")
    bare = model.__class__.from_config(model.get_config())
    bare.set_weights(weights)
    tmp = path.with_name(path.name + ".partial.keras")
    try:
        bare.save(tmp)
        if weights_dtype == "float16":
            _store_weights_as_float16(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _store_weights_as_float16(path: Path) -> None:
    """Rewrite the float32 arrays of a ``.keras`` archive's ``model.weights.h5`` as float16."""
    import io

    import h5py

    def copy(src, dst):
        dst.attrs.update(src.attrs)
        for key, item in src.items():
            if isinstance(item, h5py.Dataset):
                data = item[()]
                data = data.astype(np.float16) if data.dtype == np.float32 else data
                out = dst.create_dataset(key, data=data)
                out.attrs.update(item.attrs)
            else:
                copy(item, dst.create_group(key))

    with zipfile.ZipFile(path) as zin:
        entries = [(info, zin.read(info.filename)) for info in zin.infolist()]
    if "model.weights.h5" not in [info.filename for info, _ in entries]:
        raise ConfigError(f"{str(path)!r} holds no model.weights.h5: not a Keras 3 archive")
    with zipfile.ZipFile(path, "w") as zout:
        for info, data in entries:
            if info.filename == "model.weights.h5":
                buf = io.BytesIO()
                with h5py.File(io.BytesIO(data), "r") as src, h5py.File(buf, "w") as dst:
                    copy(src, dst)
                data = buf.getvalue()
            zout.writestr(info, data)


def write_card(directory: Path, card: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "card.json").write_text(json.dumps(card, indent=2, default=float))
