"""discovery: screen inorganic composition space for new materials.

A WGAN generator proposes compositions, filters drop the implausible and the known, and
property ensembles rank what is left.
"""

from discovery.elements import ELEMENTS


def sample(n: int, seed: int = 0) -> list[str]:
    """n decoded formulas from the shipped generator (not deduplicated); same seed, same list."""
    from discovery.gan.sampler import sample as _sample

    return _sample(n, seed)


def predict(formulas, properties=("bandgap", "formation_energy", "tc")):
    """Predicted properties (ensemble means) and ``<property>_std`` as a DataFrame."""
    from discovery.properties import predict as _predict

    return _predict(formulas, properties)


__all__ = ["ELEMENTS", "predict", "sample"]
__version__ = "0.1.0"
