"""LeukoLens serving side, on onnxruntime (never torch).

core/: the model contract training shares (recipe, card, classifier, checks, Grad-CAM, TTA;
training also records its exports in the store, service/model_registry.py, and simulates
samples with service/blast_share.py);
service/: prediction without HTTP (pipeline, service, registry, records, limits);
web/: the HTTP layer (API routes, pages, docs, metrics, middleware); main.py puts them together.
"""
