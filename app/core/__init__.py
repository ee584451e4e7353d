"""The model contract that training shares: recipe, card, classifier, quality checks, Grad-CAM, TTA.

Nothing here knows about HTTP or torch; training imports these modules so that a model is always
trained and served with the same code.
"""
