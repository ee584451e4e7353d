"""Archive scoring on a Ray cluster (the cluster extra)."""
