"""LeukoLens serving side, on onnxruntime (never torch).

core/: the model contract training shares (recipe, card, classifier, checks, Grad-CAM, TTA;
training also records its exports in the store, service/model_registry.py, and simulates
samples with service/blast_share.py);
service/: prediction without HTTP (pipeline, service, registry, records, limits);
web/: the HTTP layer (API routes, pages, docs, metrics, middleware); main.py puts them together.
"""

import os

# onnxruntime's telemetry writes a session file (.ses) into TMPDIR as it is imported: the
# server writes nothing there (a read-only or tiny /tmp must do), and reports to no one.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
