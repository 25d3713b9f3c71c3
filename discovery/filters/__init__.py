"""Filters over batches of count vectors: chemistry (SMACT), novelty, element rules, custom."""
