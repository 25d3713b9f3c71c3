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
import shutil
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from discovery.atomic import atomic_write, recover_dir, replace_dir, staging_dir
from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.encoding import composition_keys, first_occurrences, parse_formulas, reduce_counts
from discovery.errors import ConfigError
from discovery.generation.base import Generator, Seed, read_card, seed_sequence, state_version
from discovery.generation.lm_tokens import (
    CANONICAL_SYMBOLS,
    MAX_ELEMENTS,
    REVERSE_COLUMNS,
    VOCAB,
    counts_to_tokens,
)

SHIPPED_LM_DIR = Path(__file__).resolve().parent.parent / "models" / "lm"
BEAM_BLOCK = 1 << 30  # the block index whose seed drives a stochastic beam
MAX_BEAM_WIDTH = 10_000_000  # beam ids are int32 row x vocabulary products

DEFAULTS = {"units": 256, "embed_dim": 64, "temperature": 1.0, "top_p": None, "epochs": 40,
            "batch_size": 256, "learning_rate": 2e-3, "patience": 3, "val_fraction": 0.05,
            "block": 4096, "dropout": 0.0, "distinct": False,
            "min_fresh": 0.3, "temperature_step": 0.05, "max_temperature": 2.0,
            "decoding": "sample", "beam_width": 100_000, "beam_temperature": 0.0, "reverse_weight": 0.25}
DECODINGS = ("sample", "beam")


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
                  ("max_temperature", lambda v: v > 0, "> 0"),
                  ("decoding", lambda v: v in DECODINGS, f"one of {', '.join(DECODINGS)}"),
                  ("beam_width", lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool)
                   and 1 <= v <= MAX_BEAM_WIDTH, f"an integer in 1..{MAX_BEAM_WIDTH:,}"),
                  ("beam_temperature", lambda v: v >= 0, ">= 0"),
                  ("reverse_weight", lambda v: 0 <= v <= 1, "in [0, 1]"))
        for key, ok, what in checks:
            try:
                good = bool(ok(self.hparams[key]))
            except TypeError:  # a string or None from a hand-edited card
                good = False
            if not good:
                raise ConfigError(f"{key} must be {what}, got {self.hparams[key]!r}")
        self.model = None
        self.extra_models: list = []  # further networks decoded with ``model`` as a product of experts
        self.reverse_models: list = []  # networks over the reversed element order that rescore the beam
        self._sampler = None
        self._beam_heads: dict = {}
        self._beam_lock = threading.Lock()  # one search at a time (a prefetch thread may ask too)

    # -- network ---------------------------------------------------------------------------
    def build(self, seed: int = 0) -> CompositionLM:
        self.model = build_network(self.hparams["units"], self.hparams["embed_dim"], seed,
                                   self.hparams.get("dropout", 0.0))
        self.extra_models, self.reverse_models, self._sampler, self._beam_heads = [], [], None, {}
        return self

    def with_options(self, temperature: float | None = None, top_p: float | None = None,
                     distinct: bool | None = None, **decoding) -> CompositionLM:
        """The same networks with other sampling options (shares the weights); ``decoding``
        takes ``decoding``, ``beam_width``, ``beam_temperature`` and ``reverse_weight``."""
        bad = set(decoding) - {"decoding", "beam_width", "beam_temperature", "reverse_weight"}
        if bad:
            raise ConfigError(f"unknown CompositionLM option {sorted(bad)[0]!r}")
        hp = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("distinct", distinct),
                                *decoding.items()) if v is not None}
        other = CompositionLM(self.card, **{**self.hparams, **hp})
        other.model, other.extra_models = self.model, list(self.extra_models)
        other.reverse_models = list(self.reverse_models)
        return other

    def with_members(self, models: Sequence) -> CompositionLM:
        """These options with further networks (Keras models from ``build_network``, trained
        on the same data) that search the beam together with this one as a product of experts:
        each next-token distribution is the renormalised mean of the networks' log
        probabilities. Draws after the beam come from the first network alone."""
        other = self.with_options()
        other.extra_models = list(models)
        return other

    def with_reverse(self, models: Sequence) -> CompositionLM:
        """These options with networks trained on the reversed element order
        (``lm_tokens.REVERSE_COLUMNS``) that rescore the beam: its compositions are ordered by
        (1 - reverse_weight) x the search's log p + reverse_weight x their mean log p. Two
        factorisations of one distribution err differently, so the blend ranks better than
        either (right-to-left reranking, as in machine translation)."""
        other = self.with_options()
        other.reverse_models = list(models)
        return other

    @property
    def networks(self) -> list:
        return [self.model, *self.extra_models]

    def _weights(self) -> list[dict]:
        from discovery.generation.lm_sampler import gru_weights

        if self.model is None:
            raise ConfigError("CompositionLM has no network: fit, build or load it first")
        if self.card.get("element_order", "canonical") != "canonical":
            raise ConfigError("this network reads elements in reverse order: it rescores another model's "
                              "beam (CompositionLM.with_reverse) and cannot generate")
        return [gru_weights(m) for m in self.networks]

    def sampler(self):
        """Ancestral sampling from the first network (the others only steer the beam search:
        sampling every draw through all of them would cost a run one network per member)."""
        if self._sampler is None:
            from discovery.generation.lm_sampler import GRUSampler

            self._sampler = GRUSampler(self._weights()[0], self.hparams["top_p"])
        return self._sampler

    def beam_head(self, seed: Seed = 0) -> np.ndarray:
        """The beam search's distinct compounds int8 [<= beam_width, 85], best first; the last
        one computed is kept (at beam_temperature 0 it does not depend on the seed)."""
        hp = self.hparams
        stochastic = hp["beam_temperature"] > 0
        key = (str(seed) if stochastic else "", int(hp["beam_width"]), float(hp["beam_temperature"]))
        with self._beam_lock:
            if key not in self._beam_heads:
                self._beam_heads = {key: self._search_head(seed)}
            return self._beam_heads[key]

    def _search_head(self, seed: Seed) -> np.ndarray:
        from discovery.generation.lm_beam import GRUBeamSearch

        hp = self.hparams
        counts, logp = GRUBeamSearch(self._weights()).search(
            int(hp["beam_width"]), self.block_seed(seed, BEAM_BLOCK), float(hp["beam_temperature"]))
        canonical = (reduce_counts(counts) == counts).all(axis=1)  # A2B2: AB's non-canonical twin
        counts, logp = counts[canonical], logp[canonical]
        if self.reverse_models:
            from discovery.generation.lm_sampler import folded_log_probs, gru_weights

            ws = [gru_weights(m) for m in self.reverse_models]
            rev = np.zeros(len(counts))
            by_length = np.argsort((counts > 0).sum(axis=1), kind="stable")  # short rows stop early
            for i in range(0, len(counts), 16384):  # slices: the whole beam's tokens cost hundreds of MB
                rows = by_length[i:i + 16384]
                tokens = counts_to_tokens(counts[rows][:, REVERSE_COLUMNS])
                rev[rows] = np.mean([folded_log_probs(w, tokens) for w in ws], axis=0)
            w = float(hp["reverse_weight"])
            counts = counts[np.argsort(-((1 - w) * logp + w * rev), kind="stable")]
        return counts.astype(np.int8)

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
        stream keeps finding new compositions at a bounded cost. With ``decoding='beam'`` the
        stream starts with ``beam_head`` (the beam search's compositions, most likely first)
        and goes on with distinct draws. Everything depends only on (seed, block index), never
        on ``batch_size``.
        """
        if n < 0 or batch_size < 1:
            raise ConfigError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        hp = self.hparams
        sampler, block, temp = self.sampler(), int(hp["block"]), float(hp["temperature"])
        distinct = bool(hp.get("distinct", False))
        seen: set[int] = set()
        pending: list[np.ndarray] = []
        held, done, b, stale = 0, 0, 0, 0
        if hp["decoding"] == "beam" and n > 0:  # the beam's best first, then distinct draws
            head = self.beam_head(seed)
            distinct = True
            seen.update(int(k) for k in composition_keys(head))
            pending, held = [head], len(head)
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
        """Write ``model.keras`` (``member_N.keras`` and ``reverse_N.keras`` for further
        networks) and ``card.json`` listing them, as a whole: the folder is written beside
        ``directory`` and swapped in by renames (``atomic.replace_dir``; a kill in between is
        repaired by the next save or load), so a folder never mixes two saves."""
        if self.model is None:
            raise ConfigError("CompositionLM has no network to save")
        final = Path(directory)
        recover_dir(final, "card.json")
        d = staging_dir(final)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        files = ["model.keras", *(f"member_{i}.keras" for i in range(1, len(self.networks)))]
        reverse = [f"reverse_{i}.keras" for i in range(1, len(self.reverse_models) + 1)]
        for net, name in zip([*self.networks, *self.reverse_models], files + reverse, strict=True):
            net.save(d / name)
        weights = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}
        for m, net in enumerate(self.extra_models, start=1):
            weights.update({f"m{m}w{i}": w for i, w in enumerate(net.get_weights())})
        for m, net in enumerate(self.reverse_models, start=1):
            weights.update({f"r{m}w{i}": w for i, w in enumerate(net.get_weights())})
        if self.reverse_models:
            weights["reverse_weight"] = np.array([float(self.hparams["reverse_weight"])])
        if self.hparams["decoding"] != "sample":
            weights["beam"] = np.array([float(self.hparams[k]) for k in ("beam_width", "beam_temperature")])
        weights["sampling"] = np.array([self.hparams.get("temperature") or 0.0,
                                        self.hparams.get("top_p") or 0.0,
                                        float(bool(self.hparams.get("distinct")))])
        schedule = ("min_fresh", "temperature_step", "max_temperature")  # the warm-up of distinct draws
        if any(self.hparams[k] != DEFAULTS[k] for k in schedule):  # (defaults: versions stay as shipped)
            weights["schedule"] = np.array([float(self.hparams[k]) for k in schedule])
        card = {**self.card, "generator": self.name, "hyperparameters": self.hparams, "networks": files,
                "reverse_networks": reverse,
                "version": state_version(self.name, weights),
                "trained_on": self.card.get("training", {}).get("data", "formulas"),
                "vocabulary": {"special": ["PAD", "BOS", "EOS"], "elements_in_order": list(CANONICAL_SYMBOLS),
                               "counts": list(range(1, MAX_COUNT + 1)), "size": VOCAB,
                               "max_elements": MAX_ELEMENTS, "n_elements": N_ELEMENTS}}
        text = json.dumps(card, indent=2, default=float) + "\n"
        atomic_write(d / "card.json", lambda p: p.write_text(text))
        replace_dir(final, "card.json")

    @classmethod
    def load(cls, directory: Path | str | None = None) -> CompositionLM:
        """Read a saved model (default: the shipped one, ``discovery/models/lm``)."""
        from discovery.gan.io import ModelFileError, load_keras_model

        d = Path(directory) if directory is not None else SHIPPED_LM_DIR
        recover_dir(d, "card.json")
        card = read_card(d, ModelFileError, "language model")
        if list(card.get("vocabulary", {}).get("elements_in_order", [])) != list(CANONICAL_SYMBOLS):
            raise ModelFileError(f"{str(d / 'card.json')!r} was written for another element vocabulary")
        lm = cls(card)
        files = card.get("networks", ["model.keras"])
        listed = [*files, *card.get("reverse_networks", [])]
        if not files or any(not isinstance(f, str) or Path(f).name != f or not f.endswith(".keras")
                            for f in listed):
            raise ModelFileError(f"{str(d / 'card.json')!r} lists bad network files: {listed!r}")
        lm.model = load_keras_model(d / files[0])
        lm.extra_models = [load_keras_model(d / f) for f in files[1:]]
        lm.reverse_models = [load_keras_model(d / f) for f in card.get("reverse_networks", [])]
        return lm
