"""ASGI middleware: each refuses or annotates a request before any route sees it."""
