"""discovery: screen inorganic composition space for new materials.

A generator (a WGAN by default; see ``generators()``) proposes compositions, filters drop
the implausible and the known, and property ensembles rank what is left.
"""

from discovery.elements import ELEMENTS


def sample(n: int, seed: int = 0, generator: str | None = None) -> list[str]:
    """n formulas from a shipped generator (default: the registry's default); same seed,
    same list.

    Never empty strings: draws in which the generator marks no element are skipped. Not
    deduplicated, and single elements (``'Fe'``) are kept; ``discover run`` keeps compounds
    (two or more elements) only.
    """
    from discovery.generation.registry import cached_generator

    return cached_generator(generator).sample(n, seed)


def generators():
    """The shipped generators as a DataFrame (one row each; their cards' benchmark figures)."""
    import pandas as pd

    from discovery.generation.registry import generator_table

    return pd.DataFrame(generator_table()).set_index("name")


def predict(formulas, properties=("bandgap", "formation_energy", "tc"), errors: str = "raise"):
    """Predicted properties (ensemble means) and ``<property>_std`` as a DataFrame.

    ``errors="skip"`` predicts the formulas that parse and reports the others (see
    :func:`discovery.properties.predict`); formulas beyond the training data are warned about.
    """
    from discovery.properties import predict as _predict

    return _predict(formulas, properties, errors)


def __getattr__(name: str):
    """``Pipeline`` and ``composition_filter`` on first use: importing discovery stays light
    (TensorFlow loads only when a model is needed)."""
    if name in ("Pipeline", "composition_filter"):
        from discovery import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'discovery' has no attribute {name!r}")


__all__ = ["ELEMENTS", "Pipeline", "composition_filter", "generators", "predict", "sample"]
__version__ = "0.1.0"
