"""How a model did on people it never saw: figures per population with intervals that resample
whole people, paired differences, external reports, the colour counterfactual and where the
Grad-CAM heat lies. Reads what fitting wrote (predictions, runs); the release and the studies
build on it."""
