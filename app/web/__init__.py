"""The HTTP layer: API routes, browser pages, API docs, Prometheus metrics and middleware."""
