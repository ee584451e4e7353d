"""The bottom layer: the vocabulary every layer shares (domain/) and the model contract that
training shares: recipe, card, classifier, quality checks, Grad-CAM, TTA, the model store and a
sample's statistics.

Nothing here knows about HTTP, torch, the records or the serving layers above; training imports
these modules so that a model is always trained and served with the same code.
"""
