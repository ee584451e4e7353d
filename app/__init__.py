"""LeukoLens serving side: preprocessing, model cards and the onnxruntime engine (never torch)."""
