"""Damaged .keras files get our reason, not Keras' misleading "File not found" (issue 16 item 17)."""

import zipfile

import pytest

from discovery.model_files import ModelFileError, load_keras_model
from discovery.properties import MODELS_DIR

SHIPPED = MODELS_DIR / "tc" / "tmlp" / "member_0.keras"


def _damaged(tmp_path):
    good = SHIPPED.read_bytes()
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"garbage")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good[:5000])
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # inside model.weights.h5
    bitrot = tmp_path / "bitrot.keras"
    bitrot.write_bytes(bytes(flipped))
    no_weights = tmp_path / "no_weights.keras"
    with zipfile.ZipFile(SHIPPED) as src, zipfile.ZipFile(no_weights, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
    return [(garbage, "not a zip archive"), (truncated, "not a zip archive"),
            (bitrot, "fails its checksum"), (no_weights, "zip archive without model.weights.h5")]


def test_damaged_keras_files_name_the_file_and_the_real_reason(tmp_path):
    for path, reason in _damaged(tmp_path):
        with pytest.raises(ModelFileError) as info:
            load_keras_model(path)
        msg = str(info.value)
        assert msg.startswith(f"model file {str(path)!r} is corrupt or not a Keras model"), msg
        assert reason in msg and "File not found" not in msg and "\n" not in msg
