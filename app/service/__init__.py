"""Serving without HTTP: the prediction pipeline and service, model registry, records and limits."""
