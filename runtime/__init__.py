"""The lightweight runtime: preprocessing, the model card, engines, retrieval and evaluation.

It never imports torch at module level, and never a layer above it (``train``, ``export``,
``benchmarks``, ``cli``); tests hold both lines.
"""
