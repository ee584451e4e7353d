"""Offline training for LeukoLens: index C-NMC, train, cross-validate, evaluate, export ONNX."""
