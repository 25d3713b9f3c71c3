"""What decides a structure-stage result: the search budget, the relaxation and the seed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from discovery.errors import ConfigError

OPTIMIZERS = ("FIRE", "BFGS")
RANDOM_PRIORS = ("mp-wyckoff", "uniform")  # where random structures come from (random_search)
RERANKERS = ("sevennet", "none")  # the potential that decides which relaxed structure is lowest
RERANK_TIES = ("mean", "likelier")  # what separates structures the re-ranker ties
# the search and references' code version: records made before a change that moves energies are redone
STAGE_VERSION = 4
# how derivatives are ranked and kept (2: geometric ordering prior, half the template places at most)
DERIVATIVES_VERSION = 2


@dataclass(frozen=True)
class RelaxSettings:
    """Search and relaxation settings; picklable, so a worker runs the same search.

    ``max_prototypes``: AFLOW template assignments relaxed per candidate (best substitution
    score first); ``random_budget``: pyxtal structures relaxed in full where no template fits (with the
    ``mp-wyckoff`` prior, the lowest of ``prescreen`` prescreened ones);
    ``max_steps`` and ``fmax`` (eV/Å): the optimizer's cap and force criterion;
    ``max_atoms``: the largest cell relaxed; ``prescreen``: template assignments (likeliest
    first) each given ``prescreen_steps`` optimizer steps, of which the ``max_prototypes`` lowest
    in energy are relaxed fully (0: the ``max_prototypes`` likeliest, unscreened);
    ``random_prior``: where the random structures' space groups and Wyckoff sites come from
    (``mp-wyckoff``: the likeliest of the Materials Project's that fit; ``uniform``: any group). Substitution
    probability alone ties whole families (every SiO2 polymorph for VO2) and put rutile VO2,
    diamond Si and the Heusler Eu2MgTl beyond the sixth place.
    ``derivatives``: ordered derivatives of templates (two of the candidate's elements sharing one
    template element's sites: ThCr2Si2 from BaAl4, elpasolite from perovskite; ``derivatives.py``)
    added to the prescreened pool, best substitution score first (0: none); beside templates they
    take at most half of the ``max_prototypes`` places.
    ``rerank``: the potential that re-relaxes CHGNet's ``rerank_top`` lowest structures and picks
    the lowest of them (``sevennet``: SevenNet-0, better than CHGNet at ordering polymorphs on
    Matbench Discovery; ``none``: CHGNet's lowest). Energies reported stay CHGNet's.
    ``rerank_distinct``: the finalists are CHGNet's ``rerank_top`` lowest distinct structures
    (StructureMatcher): relaxations that ended in one structure take one place (False: the lowest
    relaxations, duplicates included, as records made before it).
    ``rerank_tie``: what decides among finalists within the re-ranker's 5 meV/atom tie of its pick
    (``mean``: another one is kept when the mean of CHGNet's and the re-ranker's energies puts it
    more than 5 meV/atom below the pick, as the ensemble of two potentials resolves what one cannot;
    ``likelier``: the pick stands, as records made before it).
    """

    max_prototypes: int = 6
    random_budget: int = 4
    max_steps: int = 300
    fmax: float = 0.05
    max_atoms: int = 24
    optimizer: str = "BFGS"  # fewer steps than FIRE for cell relaxations here
    seed: int = 0
    prescreen: int = 24
    prescreen_steps: int = 30
    random_prior: str = "mp-wyckoff"
    rerank: str = "sevennet"
    rerank_top: int = 3
    derivatives: int = 24
    rerank_distinct: bool = True
    rerank_tie: str = "mean"

    def __post_init__(self):
        for name in ("max_prototypes", "random_budget", "max_steps", "max_atoms", "prescreen",
                     "prescreen_steps", "rerank_top", "derivatives"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number >= 0, got {value!r}")
        if not isinstance(self.rerank_distinct, bool):
            raise ConfigError(f"rerank_distinct must be True or False, got {self.rerank_distinct!r}")
        if self.max_prototypes + self.random_budget == 0:
            raise ConfigError("--max-prototypes and --random-budget are both 0: no structure would be tried")
        if self.max_steps < 1:
            raise ConfigError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.prescreen_steps < 1:
            raise ConfigError(f"--prescreen-steps must be >= 1, got {self.prescreen_steps}")
        if self.max_atoms < 1:
            raise ConfigError(f"--max-atoms must be >= 1, got {self.max_atoms}")
        if not self.fmax > 0:
            raise ConfigError(f"--fmax must be > 0 eV/Å, got {self.fmax!r}")
        if self.random_prior not in RANDOM_PRIORS:
            raise ConfigError(f"unknown --random-prior {self.random_prior!r}; "
                              f"use {' or '.join(RANDOM_PRIORS)}")
        if self.rerank not in RERANKERS:
            raise ConfigError(f"unknown --rerank {self.rerank!r}; use {' or '.join(RERANKERS)}")
        if self.rerank_tie not in RERANK_TIES:
            raise ConfigError(f"unknown --rerank-tie {self.rerank_tie!r}; use {' or '.join(RERANK_TIES)}")
        if self.rerank != "none" and self.rerank_top < 2:
            raise ConfigError(f"--rerank-top must be >= 2 to compare structures, got {self.rerank_top} "
                              "(or --rerank none)")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        """First 12 hex digits of the SHA-256 of the settings: a record made with others is redone."""
        fields = self.to_dict()
        if not fields["derivatives"]:  # added later: without them a search is what it was before
            del fields["derivatives"]
        else:  # version 1 (session 20) wrote none: its records are redone
            fields["derivatives_version"] = DERIVATIVES_VERSION
        if not fields["rerank_distinct"] or fields["rerank"] == "none":  # added later; moot without
            del fields["rerank_distinct"]  # a re-ranker: then a search is what it was before
        if fields["rerank_tie"] == "likelier" or fields["rerank"] == "none":  # added later, as above
            del fields["rerank_tie"]
        text = json.dumps(fields | {"stage_version": STAGE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
