"""discovery: screen inorganic composition space for new materials.

A WGAN generator proposes compositions, filters drop the implausible and the known, and
property ensembles rank what is left.
"""

from discovery.elements import ELEMENTS


def sample(n: int, seed: int = 0) -> list[str]:
    """n formulas from the shipped generator; same seed, same list.

    Never empty strings: draws in which the generator marks no element are skipped. Not
    deduplicated, and single elements (``'Fe'``) are kept; ``discover run`` keeps compounds
    (two or more elements) only.
    """
    from discovery.gan.sampler import sample as _sample

    return _sample(n, seed)


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


__all__ = ["ELEMENTS", "Pipeline", "composition_filter", "predict", "sample"]
__version__ = "0.1.0"
