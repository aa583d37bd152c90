"""Offline dataset stages, run as ``python -m data_tools.X`` before training: ``prepare`` (clean and
split photos; Pillow only), ``ab_prior`` (zhang16's colour prior) and ``embed`` (the embedding cache)."""
