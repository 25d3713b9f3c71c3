"""Shards of the composition language model's sequence space, for draws seeded by position.

Draws after the beam come in blocks, each seeded by its position in the stream, so a block
cannot know what the others drew. Independent blocks from one distribution repeat each
other's likely compositions; instead each block draws from its own *shard*: a set of token
prefixes (``BOS El c El ...``) whose probability mass is about 1/M of the model's, so blocks
of different shards can never propose the same composition. The prefixes come from
expanding the prefix tree (under the first network at the sampling temperature) until every
cell holds at most ``1 / (SPLIT * M)`` of the mass, then packing the cells into M shards of
near-equal mass (longest-processing-time first). A block draws its compositions without
replacement from its shard: a stochastic beam search (``lm_beam``) whose first rows are the
shard's cells, each a Gumbel located at its mass, so that the block is an exact sample
without replacement from the model restricted to the shard, and the blocks of one cycle of M
shards together sample the whole distribution, stratified. (Independent draws from the
cells, as before, spent 60% of their rows on repeats and known compositions.)

A cell is a prefix and the tokens allowed right after it (``allow``): the mixture over a
shard's cells, each drawn with probability proportional to its mass and then continued by
the network with its next token restricted to ``allow``, is exactly the model restricted to
the shard. Complete sequences whose composition is in ``drop`` (the beam's head, the skip
set) are cut out of the tree, so no block's search spends its width on them: a node's children that are
neither expanded nor dropped are grouped into cells of at most a cell's mass. Besides the
heavy nodes (mass above a cell's), the tree is expanded along the sequences of ``paths``
(the beam's head and the known compositions the beam skipped: the most likely compositions
in ``drop``) down to mass ``EPS`` x a cell's: without that, a block's cells hold the few
known or head compositions that its draws would keep meeting (measured with independent
draws: 2,700 of 4,096 draws of a block were repeats). Cutting those leaves from the tree is
rejection of the same compositions, done before the network runs instead of after.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from discovery.generation.lm_tokens import EOS, GRAMMAR, MAX_ELEMENTS

SPLIT = 8  # cells hold at most 1 / (SPLIT * shards) of the mass
EPS = 1e-3  # expand along ``paths`` down to EPS x that
CHUNK = 8192  # frontier rows scored at a time (bounded memory)
_HASH = np.uint64(0x9E3779B97F4A7C15)


class Prefixes(NamedTuple):
    """Per row: the forced tokens (int32 [rows, L], -1 after the prefix) and the tokens
    allowed right after the prefix (bool [rows, VOCAB])."""

    tokens: np.ndarray
    allow: np.ndarray


@dataclass(frozen=True)
class Shards:
    """``prefixes`` int32 [C, L] (-1 after a cell's prefix), ``allow`` bool [C, VOCAB] (the
    tokens a cell allows after its prefix), ``log_mass`` float64 [C] (at ``temperature``), and
    per shard the cells it holds (``cells[s]``)."""

    prefixes: np.ndarray
    allow: np.ndarray
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


class _NumpyGRU:
    """``lm_sampler.FoldedGRU``'s logits and step in numpy: the tree's frontier changes size at
    every step, and TensorFlow's oneDNN kernels keep memory per shape (measured: +1.4 GB over
    one tree; 0.2 GB in numpy)."""

    def __init__(self, weights: dict[str, np.ndarray]):
        from discovery.generation.lm_tokens import VOCAB

        self.x_table = weights["x_table"].astype(np.float32)
        h_mat, h_bias = weights["h_mat"].astype(np.float32), weights["h_bias"].astype(np.float32)
        self.w_out, self.b_out = h_mat[:, :VOCAB], h_bias[:VOCAB]
        self.w_rec, self.b_rec = h_mat[:, VOCAB:], h_bias[VOCAB:]
        self.units = h_mat.shape[0]

    def logits(self, h: np.ndarray) -> np.ndarray:
        return h @ self.w_out + self.b_out

    def step(self, tok: np.ndarray, h: np.ndarray) -> np.ndarray:
        xz, xr, xh = np.split(self.x_table[tok], 3, axis=1)
        hz, hr, hh = np.split(h @ self.w_rec + self.b_rec, 3, axis=1)
        z = 1.0 / (1.0 + np.exp(-(xz + hz)))
        r = 1.0 / (1.0 + np.exp(-(xr + hr)))
        return (z * h + (1.0 - z) * np.tanh(xh + r * hh)).astype(np.float32)

    def start(self) -> np.ndarray:
        return self.step(np.array([1]), np.zeros((1, self.units), dtype=np.float32))


def _extend(h: np.ndarray, tok: np.ndarray) -> np.ndarray:
    """Prefix hashes after appending ``tok`` (uint64 arithmetic wraps)."""
    return h * _HASH + tok.astype(np.uint64)


def path_hashes(counts: np.ndarray | None) -> list[np.ndarray] | None:
    """Sorted hashes of the proper prefixes of the token sequences of ``counts``, by length
    (``[L]``: the first L tokens after BOS, EOS excluded); None for none."""
    from discovery.elements import MAX_COUNT
    from discovery.generation.lm_tokens import PAD, counts_to_tokens

    if counts is None or not len(counts):
        return None
    c = np.asarray(counts)
    n_el = (c > 0).sum(axis=1)
    c = c[(n_el >= 2) & (n_el <= MAX_ELEMENTS) & (c.max(axis=1) <= MAX_COUNT) & (c.min(axis=1) >= 0)]
    parts: list[list[np.ndarray]] = [[] for _ in range(2 * MAX_ELEMENTS + 1)]
    for i in range(0, len(c), 32_768):  # counts_to_tokens widens to int64: slices bound the memory
        tok = counts_to_tokens(c[i:i + 32_768])
        h = np.zeros(len(tok), dtype=np.uint64)
        for length in range(1, 2 * MAX_ELEMENTS + 1):
            t = tok[:, length]
            h = _extend(h, t)
            parts[length].append(h[(t != PAD) & (t != EOS)])
    return [np.unique(np.concatenate(p)) if p else np.zeros(0, dtype=np.uint64) for p in parts]


def build_shards(weights: dict[str, np.ndarray], temperature: float, n_shards: int,
                 drop: np.ndarray | None = None, paths: np.ndarray | None = None) -> Shards:
    """The prefix cells of one network (``lm_sampler.gru_weights``) at ``temperature``, packed
    into ``n_shards`` shards of near-equal mass; complete sequences whose composition key is
    in ``drop`` (sorted uint64) are left out, and the tree is expanded along the sequences of
    ``paths`` (count vectors) where they are heavier than ``EPS`` x a cell. Deterministic:
    log masses are rounded to 1e-9 before any comparison or ordering, so float noise cannot
    reorder cells."""
    from discovery.encoding import composition_keys
    from discovery.generation.base import in_sorted
    from discovery.generation.lm_tokens import VOCAB, tokens_to_counts

    net = _NumpyGRU(weights)
    limit = 1.0 / (SPLIT * n_shards)
    log_limit, log_eps = np.log(limit), np.log(EPS * limit)
    targets = path_hashes(paths)
    # nodes to split, in pieces of at most CHUNK rows, depth first (a stack: memory stays at a
    # few pieces per level, not a whole level's states): (step, states, prefixes, log masses,
    # last element tokens (grammar; step 0 ignores them), prefix hashes)
    stack = [(0, net.start(), np.zeros((1, 0), dtype=np.int32), np.zeros(1), np.zeros(1, dtype=np.int64),
              np.zeros(1, dtype=np.uint64))]
    out_prefix, out_allow, out_mass = [], [], []
    while stack:
        step, p_h, p_pre, p_logm, p_prev, p_hsh = stack.pop()
        logits = net.logits(p_h)
        allowed = GRAMMAR[step, p_prev if step % 2 == 0 else p_pre[:, -1]]
        logp = _log_softmax_rows(logits, allowed, temperature)
        rows, tok = np.nonzero(allowed)  # row-major: tokens ascending within a row
        child = np.round(p_logm[rows] + logp[rows, tok], 9)
        keep = np.ones(len(tok), dtype=bool)
        end = np.flatnonzero(tok == EOS)
        if drop is not None and len(end):  # complete: one composition, maybe the beam's
            seq = np.full((len(end), 2 * MAX_ELEMENTS + 2), 0, dtype=np.int64)
            seq[:, 0], seq[:, 1:step + 1], seq[:, step + 1] = 1, p_pre[rows[end]], EOS
            keep[end] = ~in_sorted(drop, composition_keys(tokens_to_counts(seq)))
        grow = (tok != EOS) & (child > log_limit)
        c_hsh = _extend(p_hsh[rows], tok)
        if targets is not None and step + 1 < len(targets):
            grow |= (tok != EOS) & (child > log_eps) & in_sorted(targets[step + 1], c_hsh)
        if step + 1 == 2 * MAX_ELEMENTS:
            grow[:] = False
        # the rest of each node's children: cells (node's prefix, allowed tokens) of at most
        # a cell's mass each, children in token order
        rest = np.flatnonzero(keep & ~grow)
        if len(rest):
            r, t = rows[rest], tok[rest]
            m = np.exp(child[rest])
            first_of_row = np.r_[True, r[1:] != r[:-1]]
            cum = np.cumsum(m)
            row_start = np.maximum.accumulate(np.where(first_of_row, np.arange(len(r)), 0))
            before = cum - m - (cum[row_start] - m[row_start])
            group = np.floor(np.round(before / limit, 9)).astype(np.int64)
            bounds = np.flatnonzero(first_of_row | np.r_[True, group[1:] != group[:-1]])
            starts = np.zeros(len(r), dtype=np.int64)
            starts[bounds] = 1
            gid = np.cumsum(starts) - 1
            allow = np.zeros((len(bounds), VOCAB), dtype=bool)
            allow[gid, t] = True
            out_allow.append(allow)
            out_prefix.append(p_pre[r[bounds]])
            out_mass.append(np.log(np.add.reduceat(m, bounds)))
        grown = np.flatnonzero(grow)
        for j in reversed(range(0, len(grown), CHUNK)):  # popped in order
            g = grown[j:j + CHUNK]
            r, t = rows[g], tok[g]
            stack.append((step + 1, net.step(t, p_h[r]), np.c_[p_pre[r], t].astype(np.int32), child[g],
                          np.where(step % 2 == 0, t, p_prev[r]), c_hsh[g]))
    width = max((p.shape[1] for p in out_prefix), default=0)
    prefixes = np.full((sum(len(p) for p in out_prefix), max(width, 1)), -1, dtype=np.int32)
    at = 0
    for p in out_prefix:
        prefixes[at:at + len(p), : p.shape[1]] = p
        at += len(p)
    allow = np.concatenate(out_allow) if out_allow else np.zeros((0, VOCAB), dtype=bool)
    log_mass = np.round(np.concatenate(out_mass), 9) if out_mass else np.zeros(0)
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
    return Shards(prefixes, allow, log_mass, cells, float(temperature))


def draw_prefixes(shards: Shards, shard: int, rng: np.random.Generator, rows: int,
                  temperature: float | None = None) -> Prefixes | None:
    """Prefixes (forced tokens and the tokens allowed after them) of ``rows`` cells of
    ``shard``, each drawn with probability proportional to its mass, or at another
    ``temperature`` to its mass to the power ``shards.temperature / temperature`` (warmer:
    flatter, as the draws after the prefix are); None for a shard without cells."""
    cells = shards.cells[shard]
    if not len(cells):
        return None
    power = 1.0 if temperature is None else shards.temperature / temperature
    w = power * shards.log_mass[cells]
    cdf = np.cumsum(np.exp(w - w.max()))
    pick = np.minimum(np.searchsorted(cdf, rng.random(rows) * cdf[-1], side="right"), len(cells) - 1)
    return Prefixes(shards.prefixes[cells[pick]], shards.allow[cells[pick]])
