"""Token sequences of compositions for the composition language model, and their grammar.

One composition is one canonical sequence ``BOS El c El c ... EOS``: elements in the order
chemists write formulas (Pauling electronegativity, ties by atomic number:
``discovery.elements.FORMULA_ORDER``), each followed by its count 1..8, at most 8 elements.
Element tokens are numbered in that order, so "an element after the previous one" is simply
a larger token id; this makes the sequence unique per composition and lets the grammar be
enforced by masking logits (``grammar_mask``), in training and in sampling alike.
"""

from __future__ import annotations

import numpy as np

from discovery.elements import ELEMENTS, FORMULA_ORDER, MAX_COUNT, N_ELEMENTS
from discovery.errors import ConfigError

PAD, BOS, EOS = 0, 1, 2
EL0 = 3  # token of the first element in canonical order
EL_LAST = EL0 + N_ELEMENTS - 1  # token of the last element (F)
CNT0 = EL0 + N_ELEMENTS  # token of count 1
VOCAB = CNT0 + MAX_COUNT  # 96
MAX_ELEMENTS = 8
SEQ_LEN = 2 * MAX_ELEMENTS + 2  # BOS + 8 x (El, c) + EOS

# element column (ELEMENTS index) of each canonical rank, and the rank of each column
RANK_TO_COL = np.asarray(FORMULA_ORDER, dtype=np.int64)
COL_TO_RANK = np.argsort(RANK_TO_COL)
CANONICAL_SYMBOLS: tuple[str, ...] = tuple(ELEMENTS[i] for i in FORMULA_ORDER)
# A column permutation that reverses the canonical order: ``counts_to_tokens(c[:, REVERSE_COLUMNS])``
# writes c's elements most electronegative first. A network trained on such sequences is a
# second, differently factorised model of the same compositions (``CompositionLM`` rescoring).
REVERSE_COLUMNS = np.empty(N_ELEMENTS, dtype=np.int64)
REVERSE_COLUMNS[RANK_TO_COL] = RANK_TO_COL[::-1]


def counts_to_tokens(counts: np.ndarray) -> np.ndarray:
    """Token sequences [N, SEQ_LEN] (PAD after EOS) of count vectors [N, 85].

    Raises ConfigError naming the first bad row: fewer than 2 or more than 8 elements, or a
    count outside 1..8.
    """
    c = np.asarray(counts, dtype=np.int64)
    n_el = (c > 0).sum(axis=1)
    bad = np.flatnonzero((n_el < 2) | (n_el > MAX_ELEMENTS) | (c < 0).any(1) | (c > MAX_COUNT).any(1))
    if len(bad):
        i = int(bad[0])
        raise ConfigError(f"row {i} ({dict((ELEMENTS[j], int(c[i, j])) for j in np.flatnonzero(c[i]))}) "
                          f"is not 2..{MAX_ELEMENTS} elements with counts 1..{MAX_COUNT} "
                          f"({len(bad)} such rows)")
    ranked = c[:, RANK_TO_COL]  # columns in canonical order
    out = np.zeros((len(c), SEQ_LEN), dtype=np.int32)
    out[:, 0] = BOS
    rows, ranks = np.nonzero(ranked)  # row-major: ranks ascending within a row
    pos = np.arange(len(rows)) - np.repeat(np.r_[0, np.cumsum(n_el)[:-1]], n_el)
    out[rows, 1 + 2 * pos] = EL0 + ranks
    out[rows, 2 + 2 * pos] = CNT0 - 1 + ranked[rows, ranks]
    out[np.arange(len(c)), 1 + 2 * n_el] = EOS
    return out


def tokens_to_counts(tokens: np.ndarray) -> np.ndarray:
    """Count vectors int8 [N, 85] of token sequences (inverse of ``counts_to_tokens``)."""
    t = np.asarray(tokens, dtype=np.int64)
    el, cnt = t[:, 1:-1:2], t[:, 2::2]
    out = np.zeros((len(t), N_ELEMENTS), dtype=np.int8)
    r, k = np.nonzero((el >= EL0) & (el <= EL_LAST))
    out[r, RANK_TO_COL[el[r, k] - EL0]] = (cnt[r, k] - CNT0 + 1).astype(np.int8)
    return out


def _grammar_table() -> np.ndarray:
    """Allowed next tokens bool [SEQ_LEN - 1, VOCAB, VOCAB], indexed [step, previous token]."""
    step = np.arange(SEQ_LEN - 1)[:, None, None]
    prev = np.arange(VOCAB)[None, :, None]
    v = np.arange(VOCAB)[None, None, :]
    i = step // 2
    is_el = (v >= EL0) & (v <= EL_LAST)
    first = (i == 0) & (v < EL_LAST)  # a second element must exist after the first
    later = (i > 0) & (i < MAX_ELEMENTS) & (v > prev)
    elem = is_el & (first | later)
    eos = (v == EOS) & (i >= 2)
    cnt = v >= CNT0
    return ((elem | eos) & (step % 2 == 0)) | (cnt & (step % 2 == 1))


# GRAMMAR[step, prev, v]: may token v follow at step ``step`` (0 = the token after BOS) when
# ``prev`` is the token before the current one (at element steps, the last element)? Even
# steps choose an element after the previous one (at step 0 any but the last in order, so a
# second element exists) or EOS once two elements are present, only EOS after eight; odd
# steps choose a count. Training masks logits with GRAMMAR[t, x[t-1]], sampling likewise.
GRAMMAR: np.ndarray = _grammar_table()
