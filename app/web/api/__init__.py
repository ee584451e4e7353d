"""The JSON API under /api/v1: routes per area and their typed dependencies."""
