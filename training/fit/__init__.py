"""Fitting models: the configuration, the training loop, checkpoints, cross-validation, the
linear head, and the files a run and a cross-validation leave."""
