"""Studies that choose between models, built on the evaluation layer: the candidate tables
(populations, weighting, morphology, the bake-off), sample simulation and share readability."""
