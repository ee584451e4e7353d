"""Alembic runs migrations on the connection app.records.records_db.migrate hands it."""

from alembic import context

from app.records.records_db import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
