"""Measurements that choose between models: unseen subjects, populations, colour and heat
checks, morphology, sample simulation and the bake-off table."""
