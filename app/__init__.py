"""LeukoLens serving side, on onnxruntime (never torch), in layers, each importing only what
stands below it (tests/app/test_layout.py):

core/: the vocabulary every layer shares (core/domain/: a prediction, its refusals, decisions,
samples, the local performance) and the model contract training shares (recipe, card,
classifier, checks, Grad-CAM, TTA, the model store, a sample's statistics);
records/: what is kept (one SQLAlchemy schema with its migrations);
inference/: prediction without HTTP (the one prediction path, the service, budgets, decoders,
the images people see); rendering/: CSV tables and FHIR reports, from plain domain data;
settings.py: every LEUKOLENS_* setting; cluster/: archives scored on a cluster;
cli/ and web/ (the HTTP layer: API routes and bodies, pages, docs, metrics, middleware), the
two front ends; main.py puts the server together.
"""

import os

# onnxruntime's telemetry writes a session file (.ses) into TMPDIR as it is imported: the
# server writes nothing there (a read-only or tiny /tmp must do), and reports to no one.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
