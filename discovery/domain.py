"""Applicability domain and calibrated uncertainty of a property model, fitted on validation data.

A prediction is *in domain* when

1. every element and every pair of elements of the composition occurs together in at least one
   training composition, and no amount, atom count or element count exceeds the training
   formulas' (the composition rule: beyond it the model extrapolates, however confident), and
2. the ensemble's raw spread (members' and stacked parts' disagreement) is at most a threshold
   chosen on the validation split, where rows above it had errors at least twice the others'.

On random validation and test splits the spread is what separates large errors (nearest-neighbour
distance in composition and element-pair support did not: ``pipelines/calibrate/README.md``);
the composition rule catches what a random split never shows, a confident number for a chemistry
the model never saw (a protactinium fluoride for the formation energy).

The reported σ is the raw spread times a scale per quantile bin of the validation spread, the scale
chosen so that 68.3% of the bin's validation errors lie within 1σ and 95.4% within 2σ as nearly as
the errors' shape allows. A row outside the composition rule has no validation data to calibrate
on: its σ is at least ``sigma_floor``, the median calibrated σ of the validation rows flagged out
of domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from discovery.elements import ELEMENTS, N_ELEMENTS
from discovery.errors import ConfigError

DOMAIN_FILE = "domain.npz"
_MAX_TOKENS = 8  # elements read per row for the pair rule (the codec's limit)
_SCALE_GRID = np.exp(np.linspace(-4.0, 6.0, 2001))


@dataclass
class DomainAssessment:
    """Per row: whether the prediction is in domain, its calibrated σ, and why not."""

    in_domain: np.ndarray  # bool [N]
    sigma: np.ndarray  # float32 [N], calibrated
    note: np.ndarray  # object [N]: "" in domain, else the reason


@dataclass
class ApplicabilityDomain:
    """Composition coverage of the training set plus a spread threshold and σ calibration."""

    pairs: np.ndarray  # bool [85, 85]: elements i and j occur together in a training row (ii: i occurs)
    max_amount: float
    max_atoms: float
    max_elements: int
    std_threshold: float  # raw spread above which a row is out of domain
    std_edges: np.ndarray  # [B-1] edges of the raw-spread bins (validation quantiles)
    std_scales: np.ndarray  # [B] σ = raw spread × scale of its bin
    sigma_floor: float  # σ at least this for rows outside the composition rule
    validation: dict  # what the fit saw: shares, MAE in and out, coverage

    # ----------------------------------------------------------------- fitting
    @staticmethod
    def coverage(train_amounts: np.ndarray) -> np.ndarray:
        """Element co-occurrence of the training compositions, bool [85, 85]."""
        p = (np.asarray(train_amounts) > 0).astype(np.float32)
        return (p.T @ p) > 0

    @classmethod
    def fit(cls, train_amounts: np.ndarray, val_amounts: np.ndarray, val_error: np.ndarray,
            val_std: np.ndarray, shares: tuple[float, ...] = (0.15, 0.125, 0.1, 0.075, 0.05),
            min_ratio: float = 2.2, bins: int = 8, min_bin_rows: int = 150) -> ApplicabilityDomain:
        """Fit on the training compositions and the validation split's absolute errors and raw
        spreads (never the test split).

        The spread threshold flags the largest share in ``shares`` whose flagged validation rows
        (with those outside the composition rule) have an MAE at least ``min_ratio`` times the
        rest's (a margin over the 2x the domain must show on test); if none does, the share with
        the highest ratio."""
        train_amounts = np.asarray(train_amounts, dtype=np.float64)
        err = np.abs(np.asarray(val_error, dtype=np.float64))
        std = np.asarray(val_std, dtype=np.float64)
        if len(err) != len(std) or len(err) != len(val_amounts) or len(err) < 2 * min_bin_rows:
            raise ConfigError(f"domain fit needs matching validation rows (at least {2 * min_bin_rows}); "
                              f"got {len(val_amounts)} compositions, {len(err)} errors, {len(std)} spreads")
        dom = cls(cls.coverage(train_amounts), float(train_amounts.max()),
                  float(train_amounts.sum(axis=1).max()), int((train_amounts > 0).sum(axis=1).max()),
                  np.inf, np.zeros(0), np.ones(1), 0.0, {})
        outside = dom.composition_note(val_amounts) != ""
        tried = []
        for share in shares:
            thr = float(np.quantile(std, 1 - share))
            flag = outside | (std > thr)
            ratio = float(err[flag].mean() / err[~flag].mean()) if flag.any() and (~flag).any() else 0.0
            tried.append((share, thr, ratio))
        good = [t for t in tried if t[2] >= min_ratio]
        share, dom.std_threshold, ratio = good[0] if good else max(tried, key=lambda t: t[2])
        n_bins = int(max(1, min(bins, len(std) // min_bin_rows)))
        dom.std_edges = np.quantile(std, np.linspace(0, 1, n_bins + 1))[1:-1]
        b = np.searchsorted(dom.std_edges, std)
        dom.std_scales = np.array([coverage_scale(err[b == i], std[b == i]) for i in range(n_bins)])
        flag = outside | (std > dom.std_threshold)
        sigma = dom.std_scales[b] * std
        dom.sigma_floor = float(np.median(sigma[flag])) if flag.any() else float(sigma.max())
        sigma = dom.calibrate(std, outside)
        dom.validation = {
            "rows": len(err), "flagged_share": float(flag.mean()), "outside_composition": int(outside.sum()),
            "spread_share": share, "mae_out": float(err[flag].mean()), "mae_in": float(err[~flag].mean()),
            "mae_ratio": ratio, **coverage_shares(err, sigma),
            "interval_factors": interval_factors(err, sigma),
            "tried": [{"share": s, "threshold": t, "mae_ratio": r} for s, t, r in tried],
        }
        return dom

    # ----------------------------------------------------------------- use
    def composition_note(self, amounts: np.ndarray) -> np.ndarray:
        """Why each composition lies outside the training compositions ("" when it does not):
        an element or a pair of elements no training row holds, or larger amounts than any."""
        a = np.asarray(amounts, dtype=np.float64)
        note = np.full(len(a), "", dtype=object)
        if len(a) == 0:
            return note
        present = a > 0
        n_el = present.sum(axis=1)
        # the first _MAX_TOKENS elements of each row (by column) are read; p U (presence vector p,
        # U = ~pairs, symmetric as ``coverage`` builds it) counts each element's unseen partners
        # among them (itself: an unseen element), one small matmul instead of gathering [N, 8, 8]
        # pairs (exact: integer counts in float32)
        read = present & (np.cumsum(present, axis=1) <= _MAX_TOKENS)
        p = read.astype(np.float32)
        partners = (p @ (~self.pairs).astype(np.float32)) > 0  # [N, 85]: unseen with some element read
        bad = read & partners  # elements of a row in an unseen pair (with themselves: unseen)
        lone = read & ~np.diagonal(self.pairs)[None, :]  # elements in no training row
        rows, cols = np.nonzero(lone)
        for r, group in _groups(rows, cols):
            note[r] = f"element {', '.join(ELEMENTS[e] for e in group)} in no training composition"
        pair_rows = np.flatnonzero(bad.any(axis=1) & ~lone.any(axis=1))
        if len(pair_rows):  # the first unseen pair (i, j), i then j by column, as the elements are read
            i = bad[pair_rows].argmax(axis=1)
            j = (read[pair_rows] & ~self.pairs[i]).argmax(axis=1)
            for r, ei, ej in zip(pair_rows.tolist(), i.tolist(), j.tolist(), strict=True):
                note[r] = f"pair {ELEMENTS[ei]}-{ELEMENTS[ej]} in no training composition"
        beyond = ((a.max(axis=1, initial=0) > self.max_amount) | (a.sum(axis=1) > self.max_atoms)
                  | (n_el > self.max_elements)) & (note == "")
        note[beyond] = "larger amounts, more atoms or more elements than any training formula"
        return note

    def calibrate(self, std: np.ndarray, outside: np.ndarray | None = None) -> np.ndarray:
        """Calibrated σ for raw spreads; rows ``outside`` the composition rule get at least the floor."""
        s = np.asarray(std, dtype=np.float64)
        sigma = self.std_scales[np.searchsorted(self.std_edges, s)] * s
        if outside is not None:
            sigma = np.where(outside, np.maximum(sigma, self.sigma_floor), sigma)
        return sigma.astype(np.float32)

    def assess(self, amounts: np.ndarray, std: np.ndarray) -> DomainAssessment:
        """In-domain flags, calibrated σ and notes for amount vectors [N, 85] and raw spreads [N]."""
        note = self.composition_note(amounts)
        outside = note != ""
        s = np.asarray(std, dtype=np.float64)
        wide = ~outside & (s > self.std_threshold)
        note[wide] = [f"ensemble spread {v:.3g} above {self.std_threshold:.3g}" for v in s[wide]]
        return DomainAssessment(~(outside | wide), self.calibrate(s, outside), note)

    # ----------------------------------------------------------------- files
    def card_entry(self) -> dict:
        """The JSON part (the coverage matrix goes to ``domain.npz``)."""
        return {"file": DOMAIN_FILE, "max_amount": self.max_amount, "max_atoms": self.max_atoms,
                "max_elements": self.max_elements, "std_threshold": self.std_threshold,
                "std_edges": self.std_edges.tolist(), "std_scales": self.std_scales.tolist(),
                "sigma_floor": self.sigma_floor, "validation": self.validation}

    def save(self, directory: Path) -> dict:
        """Write ``domain.npz`` into ``directory`` and return the card entry."""
        from discovery.atomic import atomic_write

        def write(path: Path) -> None:
            with open(path, "wb") as f:
                np.savez_compressed(f, pairs=np.packbits(self.pairs))

        atomic_write(Path(directory) / DOMAIN_FILE, write)
        return self.card_entry()

    @classmethod
    def load(cls, directory: Path, entry: dict) -> ApplicabilityDomain:
        from discovery.errors import ModelFileError

        path = Path(directory) / str(entry.get("file", DOMAIN_FILE))
        try:
            with np.load(path) as z:
                bits = np.unpackbits(z["pairs"])[: N_ELEMENTS * N_ELEMENTS]
            pairs = bits.reshape(N_ELEMENTS, N_ELEMENTS).astype(bool)
            return cls(pairs, float(entry["max_amount"]), float(entry["max_atoms"]),
                       int(entry["max_elements"]), float(entry["std_threshold"]),
                       np.asarray(entry["std_edges"], dtype=np.float64),
                       np.asarray(entry["std_scales"], dtype=np.float64), float(entry["sigma_floor"]),
                       dict(entry.get("validation", {})))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"applicability domain {str(path)!r} is unreadable or malformed ({exc})") \
                from None


def _groups(rows: np.ndarray, cols: np.ndarray):
    """(row, its cols) for np.nonzero's output (rows ascending, cols ascending within a row)."""
    if len(rows) == 0:
        return
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)], strict=True):
        yield int(rows[a]), cols[a:b].tolist()


def coverage_scale(err: np.ndarray, std: np.ndarray) -> float:
    """The factor k for which k·std puts the errors' shares within 1σ and 2σ closest (squared
    distance) to a normal distribution's 68.3% and 95.4%."""
    err = np.abs(np.asarray(err, dtype=np.float64))
    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    z = np.sort(err / std)
    c1 = np.searchsorted(z, _SCALE_GRID, side="right") / len(z)
    c2 = np.searchsorted(z, 2 * _SCALE_GRID, side="right") / len(z)
    loss = (c1 - 0.6827) ** 2 + (c2 - 0.9545) ** 2
    return float(_SCALE_GRID[int(np.argmin(loss))])


def interval_factors(err: np.ndarray, sigma: np.ndarray,
                     levels: tuple[float, ...] = (0.683, 0.73, 0.9, 0.92, 0.954)) -> dict[str, float]:
    """k per coverage level: ±k·σ held that share of the errors. Normal errors give 1.0, 1.10,
    1.64, 1.75 and 2.0; property models' errors have heavier tails (outliers in the DFT labels,
    chemistries the spread does not know), so the 95.4% factor is near 3 and 2σ holds only about
    90%. A chemist wanting a 95% interval uses ``interval_factors["0.954"]``·σ (in the card).
    When k(0.92) > 2·k(0.73), no σ puts 63–73% of errors within 1σ and 92–98% within 2σ."""
    z = np.abs(np.asarray(err, dtype=np.float64)) / np.maximum(np.asarray(sigma, dtype=np.float64), 1e-12)
    return {f"{q:.3f}": float(np.quantile(z, q)) for q in levels}


def coverage_shares(err: np.ndarray, sigma: np.ndarray) -> dict:
    """Shares of absolute errors within 1σ and 2σ."""
    err, sigma = np.abs(np.asarray(err, dtype=np.float64)), np.asarray(sigma, dtype=np.float64)
    return {"within_1sigma": float((err <= sigma).mean()), "within_2sigma": float((err <= 2 * sigma).mean())}
