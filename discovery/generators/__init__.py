"""Composition generators: anything that yields seeded batches of integer count vectors."""
