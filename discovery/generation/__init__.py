"""Composition generators: anything that yields seeded batches of integer count vectors.

(Named ``generation`` so that ``discovery.generators()``, the API listing, can exist.)
"""
