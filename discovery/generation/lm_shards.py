"""Shards of the composition language model's sequence space, for draws seeded by position.

Draws after the beam come in blocks, each seeded by its position in the stream, so a block
cannot know what the others drew. Independent blocks from one distribution repeat each
other's likely compositions; instead each block draws from its own *shard*: a set of token
prefixes (``BOS El c El ...``) whose probability mass is about 1/M of the model's, so blocks
of different shards can never propose the same composition. The prefixes come from
expanding the prefix tree (under the first network at the sampling temperature) until every
cell holds at most ``1 / (SPLIT * M)`` of the mass, then packing the cells into M shards of
near-equal mass (longest-processing-time first). A block draws a cell per row with
probability proportional to its mass, then the rest of the sequence from the network: the
mixture over a shard's cells is the model's distribution restricted to the shard, and the
blocks of one cycle of M shards together sample the whole distribution, stratified.

A cell that is a complete sequence is one composition (heavier than a cell may be); those
in ``drop`` (the beam's head, the skip set) are left out, so no block wastes draws on them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from discovery.generation.lm_tokens import EOS, GRAMMAR, MAX_ELEMENTS

SPLIT = 8  # cells hold at most 1 / (SPLIT * shards) of the mass


@dataclass(frozen=True)
class Shards:
    """``prefixes`` int32 [C, L] (-1 after a cell's prefix), ``log_mass`` float64 [C] (at
    ``temperature``), and per shard the cells it holds (``cells[s]``)."""

    prefixes: np.ndarray
    log_mass: np.ndarray
    cells: list[np.ndarray]
    temperature: float

    def __len__(self) -> int:
        return len(self.cells)

    def shard_mass(self) -> np.ndarray:
        return np.array([np.exp(self.log_mass[c]).sum() for c in self.cells])


def _log_softmax_rows(logits: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    x = np.where(allowed, logits.astype(np.float64) / temperature, -np.inf)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def build_shards(weights: dict[str, np.ndarray], temperature: float, n_shards: int,
                 drop: np.ndarray | None = None) -> Shards:
    """The prefix cells of one network (``lm_sampler.gru_weights``) at ``temperature``, packed
    into ``n_shards`` shards of near-equal mass; complete sequences whose composition key is
    in ``drop`` (sorted uint64) are left out. Deterministic: log masses are rounded to 1e-9
    before any ordering, so float noise cannot reorder cells."""
    from discovery.encoding import composition_keys
    from discovery.generation.base import in_sorted
    from discovery.generation.lm_sampler import FoldedGRU
    from discovery.generation.lm_tokens import tokens_to_counts

    net = FoldedGRU(weights)
    limit = 1.0 / (SPLIT * n_shards)
    h = net.start(1).numpy()
    prefix = np.zeros((1, 0), dtype=np.int32)
    logm = np.zeros(1)  # log mass of each prefix being split
    prev = np.zeros(1, dtype=np.int64)  # the last element token (grammar; step 0 ignores it)
    out_prefix, out_mass = [], []
    for step in range(2 * MAX_ELEMENTS):
        if not len(logm):
            break
        logits = net.logits(h).numpy()
        allowed = GRAMMAR[step, prev if step % 2 == 0 else prefix[:, -1]]
        logp = _log_softmax_rows(logits, allowed, temperature)
        rows, tok = np.nonzero(allowed)
        child = logm[rows] + logp[rows, tok]
        if drop is not None and (tok == EOS).any():  # complete: one composition, maybe the beam's
            end = np.flatnonzero(tok == EOS)
            seq = np.full((len(end), 2 * MAX_ELEMENTS + 2), 0, dtype=np.int64)
            seq[:, 0], seq[:, 1:step + 1], seq[:, step + 1] = 1, prefix[rows[end]], EOS
            keep = np.ones(len(tok), dtype=bool)
            keep[end] = ~in_sorted(drop, composition_keys(tokens_to_counts(seq)))
            rows, tok, child = rows[keep], tok[keep], child[keep]
        grow = (child > np.log(limit)) & (tok != EOS)
        if step + 1 == 2 * MAX_ELEMENTS:
            grow[:] = False
        cell_prefix = np.c_[prefix[rows], tok].astype(np.int32)
        out_prefix.append(cell_prefix[~grow])
        out_mass.append(child[~grow])
        r, t = rows[grow], tok[grow]
        h = net.step(t.astype(np.int32), net.recurrent(h[r]), h[r]).numpy() if len(r) else h[:0]
        prev = np.where(step % 2 == 0, t, prev[r]) if len(r) else prev[:0]
        prefix, logm = cell_prefix[grow], child[grow]
    width = max(p.shape[1] for p in out_prefix)
    prefixes = np.full((sum(len(p) for p in out_prefix), width), -1, dtype=np.int32)
    at = 0
    for p in out_prefix:
        prefixes[at:at + len(p), : p.shape[1]] = p
        at += len(p)
    log_mass = np.round(np.concatenate(out_mass), 9)
    mass = np.exp(log_mass)
    # longest processing time first: heaviest cell to the lightest shard (ties: lowest index)
    order = np.lexsort((np.arange(len(mass)), -mass))
    heap = [(0.0, s) for s in range(n_shards)]
    owner = np.empty(len(mass), dtype=np.int64)
    for c in order:
        load, s = heapq.heappop(heap)
        owner[c] = s
        heapq.heappush(heap, (load + mass[c], s))
    cells = [np.flatnonzero(owner == s) for s in range(n_shards)]
    return Shards(prefixes, log_mass, cells, float(temperature))


def draw_prefixes(shards: Shards, shard: int, rng: np.random.Generator, rows: int,
                  temperature: float | None = None) -> np.ndarray | None:
    """Prefix tokens int32 [rows, L] of ``rows`` cells of ``shard``, each drawn with
    probability proportional to its mass, or at another ``temperature`` to its mass to the
    power ``shards.temperature / temperature`` (warmer: flatter, as the draws after the prefix
    are); None for a shard without cells (no prefix)."""
    cells = shards.cells[shard]
    if not len(cells):
        return None
    power = 1.0 if temperature is None else shards.temperature / temperature
    w = power * shards.log_mass[cells]
    cdf = np.cumsum(np.exp(w - w.max()))
    pick = np.minimum(np.searchsorted(cdf, rng.random(rows) * cdf[-1], side="right"), len(cells) - 1)
    return shards.prefixes[cells[pick]]
