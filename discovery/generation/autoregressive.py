"""CompositionLM: an autoregressive (GRU) language model over element and count tokens.

A composition is the canonical token sequence of ``lm_tokens`` (``BOS El c El c ... EOS``,
elements in formula order). The network is a Keras functional model (embedding -> GRU ->
logits); training and sampling both mask the logits with the grammar, so every sample is a
compound of 2..8 distinct elements with counts 1..8, and the loss is the likelihood of the
distribution that is actually sampled. Sampling runs in-graph (``lm_sampler``) in fixed
blocks, each seeded by (seed..., block index), so rows do not depend on the batch size.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from discovery.atomic import atomic_write
from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.encoding import composition_keys, first_occurrences, parse_formulas, reduce_counts
from discovery.errors import ConfigError
from discovery.generation.base import Generator, Seed, read_card, seed_sequence, state_version
from discovery.generation.lm_tokens import CANONICAL_SYMBOLS, MAX_ELEMENTS, VOCAB

SHIPPED_LM_DIR = Path(__file__).resolve().parent.parent / "models" / "lm"

DEFAULTS = {"units": 256, "embed_dim": 64, "temperature": 1.0, "top_p": None, "epochs": 40,
            "batch_size": 256, "learning_rate": 2e-3, "patience": 3, "val_fraction": 0.05,
            "block": 4096, "dropout": 0.0, "distinct": False,
            "min_fresh": 0.3, "temperature_step": 0.05, "max_temperature": 2.0}


def build_network(units: int, embed_dim: int, seed: int = 0, dropout: float = 0.0):
    """tokens int [B, T] -> next-token logits [B, T, VOCAB] (unmasked), seeded initialisation;
    ``dropout`` on the GRU's inputs acts in training only."""
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, embed_dim, name="embedding")(tokens)
    x = keras.layers.GRU(units, return_sequences=True, dropout=dropout, seed=seed, name="gru")(x)
    logits = keras.layers.Dense(VOCAB, name="logits")(x)
    return keras.Model(tokens, logits, name="composition_lm")


def training_counts(formulas: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Unique reduced count vectors of the formulas the model can learn, and skipped rows by
    reason (unparseable, fractional, unary, too many elements, count > 8)."""
    batch = parse_formulas(formulas)
    skipped = {k: v for k, v in batch.failure_counts().items()} if batch.failures else {}
    a = batch.amounts[batch.valid]
    frac = np.abs(a - np.rint(a)).max(axis=1, initial=0) > 1e-6
    c = reduce_counts(np.rint(a[~frac]).astype(np.int64))
    n_el = (c > 0).sum(axis=1)
    reasons = {
        "fractional amounts": int(frac.sum()),
        "fewer than 2 elements": int((n_el < 2).sum()),
        f"more than {MAX_ELEMENTS} elements": int((n_el > MAX_ELEMENTS).sum()),
        f"a count above {MAX_COUNT}": int(((c.max(axis=1, initial=0) > MAX_COUNT) & (n_el >= 2)
                                           & (n_el <= MAX_ELEMENTS)).sum()),
    }
    skipped.update({k: v for k, v in reasons.items() if v})
    keep = (n_el >= 2) & (n_el <= MAX_ELEMENTS) & (c.max(axis=1, initial=0) <= MAX_COUNT)
    c = c[keep]
    return c[first_occurrences(composition_keys(c))].astype(np.int8), skipped


def counts_sha256(counts: np.ndarray) -> str:
    """SHA-256 of int8 count vectors [N, 85] (row order matters): the training-data hash."""
    return hashlib.sha256(np.ascontiguousarray(counts, dtype=np.int8).tobytes()).hexdigest()


class CompositionLM(Generator):
    """GRU language model over canonical composition token sequences (name ``lm``)."""

    name = "lm"

    def __init__(self, card: dict | None = None, **hparams):
        super().__init__(card)
        unknown = set(hparams) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown CompositionLM option {sorted(unknown)[0]!r}")
        self.hparams = {**DEFAULTS, **self.card.get("hyperparameters", {}), **hparams}
        if not self.hparams["temperature"] > 0:
            raise ConfigError(f"temperature must be > 0, got {self.hparams['temperature']!r}")
        tp = self.hparams["top_p"]
        if tp is not None and not 0 < tp <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {tp!r}")
        checks = (("distinct", lambda v: isinstance(v, bool | np.bool_), "True or False"),
                  ("min_fresh", lambda v: 0 <= v <= 1, "in [0, 1]"),
                  ("temperature_step", lambda v: v >= 0, ">= 0"),
                  ("max_temperature", lambda v: v > 0, "> 0"))
        for key, ok, what in checks:
            if not ok(self.hparams[key]):
                raise ConfigError(f"{key} must be {what}, got {self.hparams[key]!r}")
        self.model = None
        self._sampler = None

    # -- network ---------------------------------------------------------------------------
    def build(self, seed: int = 0) -> CompositionLM:
        self.model = build_network(self.hparams["units"], self.hparams["embed_dim"], seed,
                                   self.hparams.get("dropout", 0.0))
        self._sampler = None
        return self

    def with_options(self, temperature: float | None = None, top_p: float | None = None,
                     distinct: bool | None = None) -> CompositionLM:
        """The same network with other sampling options (shares the weights)."""
        hp = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("distinct", distinct))
              if v is not None}
        other = CompositionLM(self.card, **{**self.hparams, **hp})
        other.model = self.model
        return other

    def sampler(self):
        if self.model is None:
            raise ConfigError("CompositionLM has no network: fit, build or load it first")
        if self._sampler is None:
            from discovery.generation.lm_sampler import GRUSampler, gru_weights

            self._sampler = GRUSampler(gru_weights(self.model), self.hparams["top_p"])
        return self._sampler

    # -- Generator -------------------------------------------------------------------------
    def block_seed(self, seed: Seed, index: int) -> np.ndarray:
        """Stateless seed int64 [2] of sampling block ``index`` under ``seed``."""
        state = np.random.SeedSequence(seed_sequence(seed, index)).generate_state(2, dtype=np.uint32)
        return state.astype(np.int64)

    def iter_counts(self, n: int, seed: Seed = 0, batch_size: int = 8192) -> Iterator[np.ndarray]:
        """Reduced count vectors.

        With the ``distinct`` option the stream draws without repeats: a composition already
        drawn in this stream is skipped and the next draw taken instead. The most likely
        compositions come first; when fewer than ``min_fresh`` of a block's draws are new,
        the temperature rises by ``temperature_step`` (up to ``max_temperature``) so a long
        stream keeps finding new compositions at a bounded cost. Everything depends only on
        (seed, block index), never on ``batch_size``.
        """
        if n < 0 or batch_size < 1:
            raise ConfigError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        hp = self.hparams
        sampler, block, temp = self.sampler(), int(hp["block"]), float(hp["temperature"])
        distinct = bool(hp.get("distinct", False))
        seen: set[int] = set()
        pending: list[np.ndarray] = []
        held, done, b, stale = 0, 0, 0, 0
        while done < n:
            while held < min(batch_size, n - done):
                rows = reduce_counts(sampler.block(block, self.block_seed(seed, b), temp))
                if distinct:
                    rows = self._first_seen(rows, seen)
                    if len(rows) < hp["min_fresh"] * block:  # warm up; never cool a hot start
                        temp = max(temp, min(temp + hp["temperature_step"], hp["max_temperature"]))
                    stale = stale + 1 if len(rows) * 1000 < block else 0
                    if stale > 64:
                        raise ConfigError(f"{self.name}: the last {stale} blocks of {block:,} draws gave "
                                          f"almost no new composition after {done + held + len(rows):,} "
                                          "distinct ones; ask for fewer")
                pending.append(rows)
                held += len(rows)
                b += 1
            rows = np.concatenate(pending) if len(pending) > 1 else pending[0]
            take = min(batch_size, n - done)
            yield rows[:take].astype(np.int8)
            pending, held, done = [rows[take:]], held - take, done + take

    @staticmethod
    def _first_seen(rows: np.ndarray, seen: set[int]) -> np.ndarray:
        """The rows whose composition is not in ``seen`` (first occurrence within the block),
        in draw order; adds their keys to ``seen``."""
        keys = composition_keys(rows)
        first = first_occurrences(keys)
        new = np.fromiter((int(k) not in seen for k in keys[first]), dtype=bool, count=len(first))
        keep = first[new]
        seen.update(int(k) for k in keys[keep])
        return rows[keep]

    def fit(self, formulas: Sequence[str], seed: int = 0, name: str = "formulas") -> CompositionLM:
        """Train on formulas (unparseable / unusable rows are counted, warned and skipped)."""
        from discovery.generation.lm_train import train

        counts, skipped = training_counts(formulas)
        if skipped:
            warnings.warn(f"CompositionLM.fit skipped {sum(skipped.values())} of {len(formulas)} rows: "
                          + ", ".join(f"{v} {k}" for k, v in skipped.items()), stacklevel=2)
        self.card["skipped_rows"] = skipped
        if len(counts) == 0:
            raise ConfigError(f"CompositionLM.fit: none of the {len(formulas)} formulas is usable")
        train(self, counts, seed=seed, data_name=name)
        return self

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: Path | str) -> None:
        """Write ``model.keras`` and ``card.json`` (each via a temporary file and a rename; the
        model's temp name keeps the ``.keras`` suffix Keras requires)."""
        if self.model is None:
            raise ConfigError("CompositionLM has no network to save")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "model.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, d / "model.keras")
        weights = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
        weights["sampling"] = np.array([self.hparams.get("temperature") or 0.0,
                                        self.hparams.get("top_p") or 0.0,
                                        float(bool(self.hparams.get("distinct")))])
        schedule = ("min_fresh", "temperature_step", "max_temperature")  # the warm-up of distinct draws
        if any(self.hparams[k] != DEFAULTS[k] for k in schedule):  # (defaults: versions stay as shipped)
            weights["schedule"] = np.array([float(self.hparams[k]) for k in schedule])
        card = {**self.card, "generator": self.name, "hyperparameters": self.hparams,
                "version": state_version(self.name, weights),
                "trained_on": self.card.get("training", {}).get("data", "formulas"),
                "vocabulary": {"special": ["PAD", "BOS", "EOS"], "elements_in_order": list(CANONICAL_SYMBOLS),
                               "counts": list(range(1, MAX_COUNT + 1)), "size": VOCAB,
                               "max_elements": MAX_ELEMENTS, "n_elements": N_ELEMENTS}}
        text = json.dumps(card, indent=2, default=float) + "\n"
        atomic_write(d / "card.json", lambda p: p.write_text(text))

    @classmethod
    def load(cls, directory: Path | str | None = None) -> CompositionLM:
        """Read a saved model (default: the shipped one, ``discovery/models/lm``)."""
        from discovery.gan.io import ModelFileError, load_keras_model

        d = Path(directory) if directory is not None else SHIPPED_LM_DIR
        card = read_card(d, ModelFileError, "language model")
        if list(card.get("vocabulary", {}).get("elements_in_order", [])) != list(CANONICAL_SYMBOLS):
            raise ModelFileError(f"{str(d / 'card.json')!r} was written for another element vocabulary")
        lm = cls(card)
        lm.model = load_keras_model(d / "model.keras")
        return lm
