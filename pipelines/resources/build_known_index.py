"""Build the known-materials index shipped in the package (discovery/resources/known_index.*).

Needs the fetched crabnet tables (`discover data fetch`) and the shared GAN set
(`DISCOVERY_DATA`); refuses to write a partial index without them. Writes the sorted uint64
keys (``known_index.npy``) and their sizes and sources (``known_index.json``), each through a
temp file and a rename.

    python pipelines/resources/build_known_index.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from discovery.atomic import atomic_write  # noqa: E402
from discovery.data import DataError, cache_dir, file_sha256, shared_data_dir  # noqa: E402
from discovery.known import SHIPPED_KEYS, SHIPPED_META, KnownMaterials  # noqa: E402


def _replace(path: Path, write) -> None:
    """``write(binary file)`` through a temp file renamed into place (np.save on a path would
    append '.npy' to the temp name)."""
    def to_path(p: Path) -> None:
        with open(p, "wb") as f:
            write(f)

    atomic_write(path, to_path)


def main() -> None:
    manifest = cache_dir() / "crabnet" / "manifest.json"
    if not manifest.is_file():
        raise DataError(f"{manifest} missing: run `discover data fetch` first")
    gan = shared_data_dir() / "oqmd_gan_formulas.csv"  # type: ignore[operator]
    if not gan.is_file():
        raise DataError(f"{gan} not found")
    known = KnownMaterials._build(cache_dir(), crabnet=True, gan=True)
    wheel = json.loads(manifest.read_text())
    meta = {
        "compositions": len(known),
        "keys": "discovery.encoding.composition_keys of reduced integer counts, sorted uint64",
        "keys_sha256": hashlib.sha256(known.keys.tobytes()).hexdigest(),
        "sources": known.sources,
        "skipped": known.skipped,
        "built_from": {
            "crabnet_wheel": {"spec": wheel.get("source"), "sha256": wheel.get("wheel_sha256")},
            "oqmd_gan_formulas.csv": {"sha256": file_sha256(gan)},
        },
    }
    _replace(SHIPPED_KEYS, lambda f: np.save(f, known.keys))
    _replace(SHIPPED_META, lambda f: f.write((json.dumps(meta, indent=2) + "\n").encode()))
    print(f"wrote {SHIPPED_KEYS} ({len(known):,} compositions, {SHIPPED_KEYS.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
