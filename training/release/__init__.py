"""From a run to a served model: the decision rule, calibration, the ONNX export, site
adaptation, and the model card (written by `model_card` only)."""
