"""Serving without HTTP: the one prediction path, the service around it, budgets, decoders
and upload checks."""
