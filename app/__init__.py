"""LeukoLens serving side, on onnxruntime (never torch).

core/: the model contract training shares (recipe, card, classifier, checks, Grad-CAM, TTA);
service/: prediction without HTTP (pipeline, service, registry, records, limits);
web/: the HTTP layer (API routes, pages, docs, metrics, middleware); main.py puts them together.
"""
