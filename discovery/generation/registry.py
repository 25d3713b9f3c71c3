"""The shipped generators by name: where each class lives and where its fitted state ships.

Classes are imported only when a generator is loaded, so listing the registry (``discover
generators``) needs no TensorFlow. Adding a generator is one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from discovery.errors import ConfigError
from discovery.generation.base import Generator
from discovery.model_files import MODELS_DIR


@dataclass(frozen=True)
class Entry:
    """A shipped generator: ``module:Class`` and its model directory under ``MODELS_DIR``."""

    target: str
    directory: str
    trainable: bool = True  # `discover train <name> --data CSV` fits it from a composition list
    summary: str = ""
    options: tuple[tuple[str, object], ...] = ()  # constructor keywords of a new (unfitted) one


REGISTRY: dict[str, Entry] = {
    "wgan": Entry("discovery.gan.sampler:CompositionSampler", "gan", False,
                  "WGAN on OQMD compositions (train with `discover train gan`)"),
    "wgan-pattern": Entry("discovery.generation.pattern_wgan:PatternWGAN", "wgan_pattern", True,
                          "WGAN-GP on OQMD compositions, conditioned on the count pattern"),
    "substitution": Entry("discovery.generation.substitution:IonSubstitution", "substitution", True,
                          "one ion of a known composition swapped by Hautier substitution probabilities"),
    "substitution-elements": Entry(
        "discovery.generation.substitution:IonSubstitution", "substitution_elements", True,
        "ion substitution, plus element swaps for compositions with no ionic assignment",
        (("element_swaps", True),)),
    "lm": Entry("discovery.generation.autoregressive:CompositionLM", "lm", True,
                "GRU language model over element/count tokens (grammar-masked; a beam search's most likely "
                "compositions first, then draws without repeats)"),
    "random": Entry("discovery.generation.baselines:EnhancedRandom", "random", True,
                    "baseline: element count, elements and counts drawn independently"),
    "pattern-random": Entry("discovery.generation.baselines:PatternSiteRandom", "pattern_random", True,
                            "baseline: count pattern, then each site's element by its frequency"),
}
# Chosen on the MP validation split (pipelines/reports/bench_generators.md, 100,000 samples,
# seed 1): the highest precision and yield of the shipped generators.
DEFAULT = "lm"


def generator_names() -> list[str]:
    """The registered generator names, the default first."""
    return [DEFAULT, *(n for n in REGISTRY if n != DEFAULT)]


def entry(name: str | None) -> Entry:
    """The registry entry of ``name`` (None: the default); a one-line error for an unknown one."""
    name = DEFAULT if name is None else name
    if name not in REGISTRY:
        raise ConfigError(f"unknown generator {name!r}; known generators: {', '.join(generator_names())}")
    return REGISTRY[name]


def generator_class(name: str | None) -> type[Generator]:
    """The class registered as ``name`` (imported now)."""
    mod_name, _, attr = entry(name).target.partition(":")
    return getattr(importlib.import_module(mod_name), attr)


def new_generator(name: str) -> Generator:
    """An unfitted generator of kind ``name`` (with its registry options), for ``fit``."""
    return generator_class(name)(**dict(entry(name).options))


def shipped_dir(name: str | None) -> Path:
    """Where the shipped fitted state of ``name`` lives."""
    return MODELS_DIR / entry(name).directory


def trainable_names() -> list[str]:
    return [n for n in generator_names() if REGISTRY[n].trainable]


def saved_kind(card: dict) -> str | None:
    """The registry name a model card records (``discover train`` writes ``name``; the LM's
    card ``generator``), or None when it records none."""
    for key in ("name", "generator"):
        value = card.get(key)
        if isinstance(value, str) and value in REGISTRY:
            return value
    return None


def check_generator_dir(name: str | None, directory: Path | str) -> dict:
    """The card of ``directory`` for generator ``name``; a one-line ConfigError when the
    directory holds another kind of generator (its card names it) or none at all."""
    from discovery.generation.base import read_card

    name = DEFAULT if name is None else name
    entry(name)
    card = read_card(Path(directory), ConfigError, f"{name} generator")
    kind = saved_kind(card)
    # one class may ship as several names (substitution, substitution-elements): its card then
    # holds the options, so only another class is another kind of generator
    if kind is not None and REGISTRY[kind].target != REGISTRY[name].target:
        raise ConfigError(f"--generator-dir {str(directory)!r} holds a {kind!r} generator, not {name!r}; "
                          f"pass --generator {kind} to run it")
    return card


def _kind_by_files(directory: Path) -> str | None:
    """The registered generator whose shipped files (besides card.json) ``directory`` holds,
    the one with the most such files; None when none fits. Only a hint for an error message."""
    try:
        have = {p.name for p in directory.iterdir()}
    except OSError:
        return None
    best, most = None, 0
    for name in REGISTRY:
        try:
            files = {p.name for p in shipped_dir(name).iterdir()} - {"card.json", "__pycache__"}
        except OSError:
            continue
        if files and files <= have and len(files) > most:
            best, most = name, len(files)
    return best


def load_generator(name: str | None = None, directory: Path | str | None = None) -> Generator:
    """The shipped generator ``name`` (default: ``DEFAULT``), or one saved in ``directory``."""
    cls = generator_class(name)
    if directory is None:
        gen = cls.load(shipped_dir(name))
    else:
        check_generator_dir(name, directory)
        try:
            gen = cls.load(Path(directory))
        except Exception as exc:
            from discovery.errors import user_errors

            guess = _kind_by_files(Path(directory))
            if not isinstance(exc, user_errors()) or guess in (None, DEFAULT if name is None else name):
                raise
            raise type(exc)(f"{exc}; --generator-dir {str(directory)!r} looks like a {guess!r} generator "
                            f"(its files match the shipped one's): pass --generator {guess}") from None
    gen.name = DEFAULT if name is None else name  # the registry name (one class may serve several)
    return gen


def generator_version(name: str | None = None, directory: Path | str | None = None) -> str:
    """The card version of ``name`` (shipped, or saved in ``directory``) without loading it
    (no TensorFlow): what a run's settings record before its generator loads."""
    from discovery.generation.base import read_card

    entry(name)
    card = check_generator_dir(name, directory) if directory is not None else read_card(shipped_dir(name))
    return str(card.get("version", "unknown"))


_LOADED: dict[str, Generator] = {}


def cached_generator(name: str | None = None) -> Generator:
    """``load_generator(name)``, loaded once per process."""
    name = DEFAULT if name is None else name
    if name not in _LOADED:
        _LOADED[name] = load_generator(name)
    return _LOADED[name]


def card(name: str) -> dict:
    """The shipped card of ``name`` ({} when missing or unreadable: listing never fails)."""
    path = shipped_dir(name) / "card.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


TABLE_COLUMNS = ("name", "precision %", "precision CN+EN %", "yield /100k", "samples/s")


def generator_table() -> list[dict]:
    """One row per registered generator: its card's version, training set and the benchmark
    figures stored in the card (``benchmark``: MP validation split, written by
    ``pipelines/bench/bench_generators.py --update-cards``)."""
    rows = []
    for name in generator_names():
        c = card(name)
        b = c.get("benchmark", {})

        def fmt(key, digits, b=b):
            v = b.get(key)
            return "-" if v is None else f"{v:,.{digits}f}"

        rows.append({"name": name, "default": name == DEFAULT,
                     "version": str(c.get("version", "missing")),
                     "trained on": str(c.get("training_data", c.get("trained_on", "-"))),
                     "precision %": fmt("precision_pct", 2),
                     "precision CN+EN %": fmt("precision_cnen_pct", 2),
                     "yield /100k": fmt("yield_per_100k", 0), "samples/s": fmt("samples_per_s", 0),
                     "description": REGISTRY[name].summary})
    return rows
