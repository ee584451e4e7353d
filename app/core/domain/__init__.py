"""The vocabulary every layer shares: a prediction and its refusals, a reviewer's decision, a
sample's answer, the local performance. Plain pydantic models and types, no behaviour beyond
their own validation; the web layer answers them as they are (app/web/api/bodies.py adds the
bodies only HTTP needs)."""
