"""CompositionLM: an autoregressive (GRU) language model over element and count tokens.

A composition is the canonical token sequence of ``lm_tokens`` (``BOS El c El c ... EOS``,
elements in formula order). The network is a Keras functional model (embedding -> GRU ->
logits); training and sampling both mask the logits with the grammar, so every sample is a
compound of 2..8 distinct elements with counts 1..8, and the loss is the likelihood of the
distribution that is actually sampled. Sampling runs in-graph (``lm_sampler``) in fixed
blocks, each seeded by (seed..., block index), so rows do not depend on the batch size.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from discovery.atomic import atomic_write, recover_dir, replace_dir, staging_dir
from discovery.elements import MAX_COUNT, N_ELEMENTS
from discovery.encoding import composition_keys, reduce_counts
from discovery.errors import ConfigError
from discovery.generation.base import (
    Generator,
    Seed,
    SkipTally,
    attribute_skips,
    in_sorted,
    read_card,
    rechunk,
    seed_sequence,
    state_version,
)
from discovery.generation.lm_tokens import (
    CANONICAL_SYMBOLS,
    MAX_ELEMENTS,
    REVERSE_COLUMNS,
    VOCAB,
    counts_to_tokens,
)
from discovery.generation.training import training_set
from discovery.model_files import SHIPPED_LM_DIR

BEAM_BLOCK = 1 << 30  # the block index whose seed drives a stochastic beam
SHARD_STREAM = (1 << 30) + 1  # the stream whose seed orders the shards of each cycle
DRAW_STREAM = (1 << 30) + 2  # the stream whose seeds drive each shard's draws without replacement
RANK_CYCLES = 4  # cycles of a shard that take successive ranks of one search (their cost grows)
MAX_BEAM_WIDTH = 10_000_000  # beam ids are int32 row x vocabulary products

DEFAULTS = {"units": 256, "embed_dim": 64, "temperature": 1.0, "top_p": None, "epochs": 40,
            "batch_size": 256, "learning_rate": 2e-3, "patience": 3, "val_fraction": 0.05,
            "block": 4096, "dropout": 0.0, "distinct": False,
            "decoding": "sample", "beam_width": 100_000, "beam_temperature": 0.0, "reverse_weight": 0.25,
            "shards": 256, "draw_temperature": None}
DECODINGS = ("sample", "beam")
# the warm-up schedule of the former independent distinct draws: ignored in older cards
RETIRED_OPTIONS = ("min_fresh", "temperature_step", "max_temperature")


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


def compound_counts(formulas: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """The unique reduced count vectors the model can learn (``training.training_set``: formulas
    that parse, integer counts 1..8), kept when they have 2..MAX_ELEMENTS elements, and what was
    skipped by reason: rows the codec refused, and distinct compositions with fewer than 2 or
    more than MAX_ELEMENTS elements."""
    ts = training_set(list(formulas))
    n_el = (ts.counts > 0).sum(axis=1)
    skipped = dict(ts.skipped)
    reasons = {"fewer than 2 elements": int((n_el < 2).sum()),
               f"more than {MAX_ELEMENTS} elements": int((n_el > MAX_ELEMENTS).sum())}
    skipped.update({k: v for k, v in reasons.items() if v})
    return ts.counts[(n_el >= 2) & (n_el <= MAX_ELEMENTS)], skipped


MIN_DRAW_ROWS = 256


def next_draw_rows(size: int, need: int, fresh_rate: float) -> int:
    """Rows of a block's next draw: enough for ``need`` more at 1.5x the last draw's share of
    new compositions (the share falls as the block fills), rounded up to a power of two (a
    few graph shapes), between ``MIN_DRAW_ROWS`` and the block's ``size``. A block's last
    draw used to be a whole block for the few hundred rows it still needed."""
    want = 1.5 * need / max(float(fresh_rate), 1.0 / 64)
    rows = 1 << max(int(np.ceil(np.log2(max(want, 1.0)))), 0)
    return int(min(size, max(MIN_DRAW_ROWS, rows)))


def _as_tuple(seed: Seed) -> tuple[int, ...]:
    return tuple(seed) if isinstance(seed, tuple | list) else (int(seed),)


DECODING_OPTIONS = ("decoding", "beam_width", "beam_temperature", "reverse_weight", "shards",
                    "draw_temperature", "block")
OPTIONS = ("temperature", "top_p", "distinct", *DECODING_OPTIONS)  # what ``with_options`` takes


class CompositionLM(Generator):
    """GRU language model over canonical composition token sequences (name ``lm``)."""

    name = "lm"

    def __init__(self, card: dict | None = None, **hparams):
        super().__init__(card)
        unknown = set(hparams) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown CompositionLM option {sorted(unknown)[0]!r}")
        saved = {k: v for k, v in self.card.get("hyperparameters", {}).items() if k not in RETIRED_OPTIONS}
        self.hparams = {**DEFAULTS, **saved, **hparams}
        if not self.hparams["temperature"] > 0:
            raise ConfigError(f"temperature must be > 0, got {self.hparams['temperature']!r}")
        tp = self.hparams["top_p"]
        if tp is not None and not 0 < tp <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {tp!r}")
        checks = (("distinct", lambda v: isinstance(v, bool | np.bool_), "True or False"),
                  ("decoding", lambda v: v in DECODINGS, f"one of {', '.join(DECODINGS)}"),
                  ("beam_width", lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool)
                   and 1 <= v <= MAX_BEAM_WIDTH, f"an integer in 1..{MAX_BEAM_WIDTH:,}"),
                  ("beam_temperature", lambda v: v >= 0, ">= 0"),
                  ("reverse_weight", lambda v: 0 <= v <= 1, "in [0, 1]"),
                  ("shards", lambda v: isinstance(v, int | np.integer) and not isinstance(v, bool)
                   and 1 <= v <= 65_536, "an integer in 1..65,536"),
                  ("draw_temperature", lambda v: v is None or v > 0, "None or > 0"))
        for key, ok, what in checks:
            try:
                good = bool(ok(self.hparams[key]))
            except TypeError:  # a string or None from a hand-edited card
                good = False
            if not good:
                raise ConfigError(f"{key} must be {what}, got {self.hparams[key]!r}")
        if tp is not None and tp < 1 and (self.hparams["distinct"] or self.hparams["decoding"] == "beam"):
            raise ConfigError(f"top_p={tp!r} applies to independent sampling only; distinct and beam "
                              "decoding draw without replacement from the whole distribution")
        self.model = None
        self.extra_models: list = []  # further networks decoded with ``model`` as a product of experts
        self.reverse_models: list = []  # networks over the reversed element order that rescore the beam
        self._sampler = None
        self._draws = threading.local()  # each thread's search for the draws (``_draw_search``)
        self._beam_heads: dict = {}  # the last head: {key: (counts, its keys sorted, skipped, shards)}
        self._beam_lock = threading.Lock()  # one search at a time (a prefetch thread may ask too)
        self._source: Path | None = None  # the folder these weights were loaded from, unchanged since

    # -- network ---------------------------------------------------------------------------
    def build(self, seed: int = 0) -> CompositionLM:
        self.model = build_network(self.hparams["units"], self.hparams["embed_dim"], seed,
                                   self.hparams.get("dropout", 0.0))
        self.extra_models, self.reverse_models = [], []
        self.forget_weights()
        return self

    def forget_weights(self) -> None:
        """Drop what was built from the current weights (the sampler, the draws' searches, the
        beam heads, the saved folder they came from): call it whenever the weights change."""
        self._sampler, self._beam_heads, self._source = None, {}, None
        self._draws = threading.local()

    def with_options(self, temperature: float | None = None, top_p: float | None = None,
                     distinct: bool | None = None, **decoding) -> CompositionLM:
        """The same networks with other sampling options (shares the weights); ``decoding``
        takes ``decoding``, ``beam_width``, ``beam_temperature``, ``reverse_weight``, ``shards``,
        ``draw_temperature`` and ``block``."""
        bad = set(decoding) - set(DECODING_OPTIONS)
        if bad:
            raise ConfigError(f"unknown CompositionLM option {sorted(bad)[0]!r}")
        hp = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("distinct", distinct),
                                *decoding.items()) if v is not None}
        other = CompositionLM(self.card, **{**self.hparams, **hp})
        other.model, other.extra_models = self.model, list(self.extra_models)
        other.reverse_models = list(self.reverse_models)
        other._source = self._source
        return other

    def with_members(self, models: Sequence) -> CompositionLM:
        """These options with further networks (Keras models from ``build_network``, trained
        on the same data) that search the beam together with this one as a product of experts:
        each next-token distribution is the renormalised mean of the networks' log
        probabilities. Draws after the beam come from the first network alone."""
        other = self.with_options()
        other.extra_models, other._source = list(models), None
        return other

    def with_reverse(self, models: Sequence) -> CompositionLM:
        """These options with networks trained on the reversed element order
        (``lm_tokens.REVERSE_COLUMNS``) that rescore the beam: its compositions are ordered by
        (1 - reverse_weight) x the search's log p + reverse_weight x their mean log p. Two
        factorisations of one distribution err differently, so the blend ranks better than
        either (right-to-left reranking, as in machine translation)."""
        other = self.with_options()
        other.reverse_models, other._source = list(models), None
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

    def beam_head(self, seed: Seed = 0, skip: np.ndarray | None = None) -> np.ndarray:
        """The beam search's distinct compounds int8 [<= beam_width, 85], best first, none in
        ``skip`` (sorted uint64 keys); the last one computed is kept (at beam_temperature 0 it
        does not depend on the seed)."""
        return self._head(seed, skip)[0]

    def _head(self, seed: Seed, skip: np.ndarray | None) -> tuple:
        """(head counts, their keys sorted, compositions the search dropped for ``skip``, the
        shards of the draws after it), computed once per (seed if stochastic, width, skip): for
        a saved model, once per machine (``lm_head``: a child process, kept on disk)."""
        import hashlib

        hp = self.hparams
        stochastic = hp["beam_temperature"] > 0
        digest = None if skip is None else hashlib.sha256(skip.tobytes()).hexdigest()
        key = (str(seed) if stochastic else "", int(hp["beam_width"]), float(hp["beam_temperature"]),
               hp["decoding"], digest)
        with self._beam_lock:
            if key not in self._beam_heads:
                from discovery.generation.lm_head import IN_PROCESS_MAX_WIDTH, cached_head

                if (self._source is not None and hp["decoding"] == "beam"
                        and int(hp["beam_width"]) > IN_PROCESS_MAX_WIDTH):
                    hparams = json.loads(json.dumps(hp, default=lambda v: v.item()))  # numpy scalars
                    found = cached_head(self._source, hparams, key, seed, skip)
                else:
                    found = self._compute_head(seed, skip)
                self._beam_heads = {key: found}
            return self._beam_heads[key]

    def _compute_head(self, seed: Seed, skip: np.ndarray | None) -> tuple:
        """``_head``'s tuple, computed here."""
        hp = self.hparams
        if hp["decoding"] == "beam":
            head, skipped, paths = self._search_head(seed, skip)
        else:
            head, skipped = np.zeros((0, N_ELEMENTS), dtype=np.int8), 0
            paths = head
        head_keys = np.unique(composition_keys(head))
        drop = head_keys if skip is None else np.union1d(head_keys, skip)
        from discovery.generation.lm_shards import build_shards

        # cells at the temperature the draws start at; the tree cut along the head and
        # the skipped compositions the beam met (the likeliest of ``drop``)
        draw_t = hp["draw_temperature"] if hp["draw_temperature"] is not None else hp["temperature"]
        shards = build_shards(self._weights()[0], float(draw_t), int(hp["shards"]), drop, paths)
        return head, head_keys, skipped, shards

    def _search_head(self, seed: Seed, skip: np.ndarray | None = None) -> tuple[np.ndarray, int, np.ndarray]:
        """(the head, compositions the search dropped for ``skip``, the head and those dropped
        ones as count vectors)."""
        from discovery.generation.lm_beam import GRUBeamSearch

        hp = self.hparams
        search = GRUBeamSearch(self._weights())
        counts, logp = search.search(int(hp["beam_width"]), self.block_seed(seed, BEAM_BLOCK),
                                     float(hp["beam_temperature"]), skip)
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
        return counts.astype(np.int8), search.skipped, np.concatenate([counts, search.skipped_counts])

    # -- Generator -------------------------------------------------------------------------
    def block_seed(self, seed: Seed, index: int) -> np.ndarray:
        """Stateless seed int64 [2] of sampling block ``index`` under ``seed``."""
        state = np.random.SeedSequence(seed_sequence(seed, index)).generate_state(2, dtype=np.uint32)
        return state.astype(np.int64)

    def _slice(self, start: int, stop: int, seed: Seed, batch_size: int, skip: np.ndarray | None,
               tally: SkipTally | None) -> Iterator[np.ndarray]:
        """Rows [start, stop) of the stream of ``seed``: reduced count vectors.

        With ``decoding='beam'`` the stream starts with ``beam_head`` (computed once per
        process and cached) and goes on with blocks of ``block`` draws; block b depends only on
        (seed, b) (``draw_block``), so any slice is computed from the blocks it touches. With
        ``skip``, neither holds a composition in it. Nothing depends on ``batch_size``.
        """
        if stop <= start:
            return
        head, head_keys, head_skipped, shards = self._head(seed, skip)
        size = int(self.hparams["block"])

        def pieces():
            if start < len(head):
                if tally is not None and start == 0:
                    tally.skipped += head_skipped
                yield head[start:min(stop, len(head))]
            lo, hi = max(start, len(head)) - len(head), stop - len(head)
            for b in range(lo // size, -(-hi // size) if hi > lo else 0):
                rows, before = self.draw_block(seed, b, skip, head_keys, shards)
                a, z = max(lo - b * size, 0), min(hi - b * size, size)
                if tally is not None:
                    tally.skipped += int(before[a:z].sum())
                yield rows[a:z]

        yield from rechunk(pieces(), batch_size)

    def draw_block(self, seed: Seed, b: int, skip: np.ndarray | None = None,
                   head_keys: np.ndarray | None = None, shards=None) -> tuple[np.ndarray, np.ndarray]:
        """Block ``b`` of the draws after the head [block, 85] and, per row, the draws it
        replaced because they were in ``skip``.

        Plain sampling: ``block`` draws seeded by (seed, b), a draw in ``skip`` drawn again.
        With ``distinct`` (always after a beam) the block draws without replacement from its
        shard (``_draw_distinct``)."""
        hp = self.hparams
        if bool(hp["distinct"]) or hp["decoding"] == "beam":
            return self._draw_distinct(seed, b, skip, head_keys, shards)
        size, sampler, temp = int(hp["block"]), self.sampler(), float(hp["temperature"])
        parts, before, carry, have, stale = [], [], 0, 0, 0
        n = size
        for j in itertools.count():
            sub_seed = self.block_seed(seed, b) if j == 0 else self.block_seed((*_as_tuple(seed), b), j)
            rows = reduce_counts(sampler.block(n, sub_seed, temp))
            if skip is None:
                return rows.astype(np.int8), np.zeros(size, dtype=np.int64)
            skipped = in_sorted(skip, composition_keys(rows))
            keep = ~skipped
            n_before, carry = attribute_skips(keep, skipped, carry)
            take = min(size - have, len(n_before))
            idx = np.flatnonzero(keep)[:take]
            parts.append(rows[idx])
            before.append(n_before[:take])
            have += take
            if have >= size:
                return np.concatenate(parts).astype(np.int8), np.concatenate(before)
            stale = stale + 1 if keep.sum() * 1000 < n else 0
            n = next_draw_rows(size, size - have, keep.sum() / n)
            if stale > 64:
                raise ConfigError(f"{self.name}: the last {stale} draws of {size:,} gave almost no "
                                  f"composition outside the skip set (block {b:,} of seed {seed!r}); "
                                  "ask for fewer")

    def _draw_distinct(self, seed: Seed, b: int, skip: np.ndarray | None, head_keys: np.ndarray | None,
                       shards) -> tuple[np.ndarray, np.ndarray]:
        """Block ``b`` drawn without replacement from its shard (``lm_shards``: block b of cycle
        c = b // shards takes the shard a permutation seeded by (seed, c) puts at b % shards):
        the stochastic beam search (``lm_beam``, Kool et al. 2019) started from the shard's
        cells draws the (c + 1) x block likeliest Gumbel-perturbed sequences at
        ``draw_temperature`` (None: ``temperature``), seeded by (seed, shard), and cycle c keeps
        the c-th block of them (c < ``RANK_CYCLES``; a later cycle the best block of a search
        seeded by (seed, cycle, shard), so a block never costs more than ``RANK_CYCLES``
        blocks' work). No composition of ``skip`` or of the head, nor one written with
        its counts multiplied (A2B2: AB's sequence may lie in another shard), finishes, so the
        block holds ``block`` new compositions. Blocks of one cycle never repeat each other
        (shards hold disjoint sequences); the ranked cycles of one shard take successive ranks
        of one set of perturbed values, which depend on (seed, shard, sequence) alone, not on
        the search's width (with bans a wider search can rank a composition a narrower one
        lost; later cycles draw afresh: the pipeline keeps the first of any repeat).
        Independent draws spent 60% of their rows on repeats and known compositions. A block's
        skipped compositions (in ``skip``) are counted on its first row, for cycle 0."""
        from discovery.generation.lm_shards import Prefixes

        hp = self.hparams
        size = int(hp["block"])
        m = len(shards)
        cycle, pos = divmod(b, m)
        shard = int(np.random.default_rng(seed_sequence(seed, SHARD_STREAM, cycle)).permutation(m)[pos])
        cells = shards.cells[shard]
        temp = float(hp["temperature"] if hp["draw_temperature"] is None else hp["draw_temperature"])
        # the first RANK_CYCLES cycles of a shard take successive ranks of one search; later
        # ones a search of their own (a search (c + 1) blocks wide costs c + 1 blocks' work)
        ranked = cycle < RANK_CYCLES
        first = cycle * size if ranked else 0
        need = first + size
        stream = (*_as_tuple(seed), DRAW_STREAM) if ranked else (*_as_tuple(seed), DRAW_STREAM, cycle)
        rows = np.zeros((0, N_ELEMENTS), dtype=np.int8)
        search = self._draw_search()
        if len(cells):
            roots = Prefixes(shards.prefixes[cells], shards.allow[cells])
            exclude = np.zeros(0, dtype=np.uint64) if head_keys is None else head_keys
            # a few spare places: a row whose every ending is skipped leaves the search at its
            # last step with nothing to take its place; wider only if a search still falls short
            for width in (need + max(size // 64, 1), 2 * need, 8 * need):
                counts, _ = search.search(width, self.block_seed(stream, shard), temp, skip, exclude, roots)
                if len(counts) >= need:
                    break
            rows = counts[first:need]
        if len(rows) < size:
            raise ConfigError(f"{self.name}: shard {shard:,} of {m:,} holds fewer than {need:,} "
                              f"new compositions (block {b:,} of seed {seed!r}); ask for fewer")
        before = np.zeros(size, dtype=np.int64)
        before[0] = search.skipped if cycle == 0 or not ranked else 0  # ranked cycles: counted once
        return rows.astype(np.int8), before

    def _draw_search(self):
        """The stochastic beam search of the draws after the head: the first network alone (the
        shards are its cells); one per thread, as a search keeps its last skipped count."""
        search = getattr(self._draws, "search", None)
        if search is None:
            from discovery.generation.lm_beam import GRUBeamSearch

            search = self._draws.search = GRUBeamSearch(self._weights()[0])
        return search

    def fit(self, formulas: Sequence[str], seed: int = 0, name: str = "formulas") -> CompositionLM:
        """Train on formulas (unparseable / unusable rows are counted, warned and skipped)."""
        from discovery.generation.lm_train import train

        counts, skipped = compound_counts(formulas)
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
        if self.hparams["shards"] != DEFAULTS["shards"]:
            weights["shards"] = np.array([float(self.hparams["shards"])])
        if self.hparams["draw_temperature"] is not None:
            weights["draw_temperature"] = np.array([float(self.hparams["draw_temperature"])])
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
        from discovery.model_files import ModelFileError, load_keras_model

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
        lm._source = d.resolve()
        return lm
