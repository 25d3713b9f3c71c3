"""The child process of ``lm_head``: load a saved language model, compute its beam head and
write it where the parent waits for it (``python -m discovery.generation.lm_head_worker REQUEST``,
REQUEST a JSON object: source, hparams, seed, skip, out)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from discovery.generation.autoregressive import OPTIONS, CompositionLM
from discovery.generation.lm_head import save_head


def main(request: str) -> None:
    r = json.loads(request)
    options = {k: v for k, v in r["hparams"].items() if k in OPTIONS}
    lm = CompositionLM.load(r["source"]).with_options(**options)
    unknown = {k: v for k, v in r["hparams"].items() if k not in OPTIONS and lm.hparams.get(k) != v}
    if unknown:
        raise SystemExit(f"error: the saved model's hyperparameters differ: {sorted(unknown)}")
    skip = np.load(r["skip"]) if r["skip"] else None
    seed = tuple(r["seed"]) if isinstance(r["seed"], list) else r["seed"]
    save_head(Path(r["out"]), *lm._compute_head(seed, skip))


if __name__ == "__main__":
    main(sys.argv[1])
