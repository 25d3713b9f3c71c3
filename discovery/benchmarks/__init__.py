"""Benchmark and selection logic that more than one script under ``pipelines/`` uses.

Scripts are entry points only: what two of them share lives here, where it is tested
(``tests/test_benchmarks.py``). ``generators``: the generator benchmark on the MP validation
split; ``lm_selection``: judging and choosing language-model sampling settings;
``stability``: the formation-energy / stability benchmark's data and model folders.
"""
