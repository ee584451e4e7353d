"""Serving without HTTP: the one prediction path, the service around it, budgets, decoders,
upload checks and the images a person sees of a prediction."""
