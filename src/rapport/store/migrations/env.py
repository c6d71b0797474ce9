"""Alembic environment: runs on the connection the service hands over (see store/db.py)."""

from alembic import context

from rapport.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through rapport (store.db.Database.migrate)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
