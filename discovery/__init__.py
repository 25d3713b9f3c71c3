"""discovery: screen inorganic composition space for new materials.

A WGAN generator proposes compositions, filters drop the implausible and the known, and
property ensembles rank what is left.
"""

from discovery.elements import ELEMENTS

__all__ = ["ELEMENTS"]
__version__ = "0.1.0"
