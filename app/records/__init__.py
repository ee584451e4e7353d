"""What is kept: one SQLAlchemy schema with its Alembic migrations (audit, journal, samples,
decisions)."""
