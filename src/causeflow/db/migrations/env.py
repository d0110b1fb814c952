"""Alembic environment: runs on the connection `causeflow.db.migrate` hands it.

The complete metadata (`causeflow.schema`) is handed in too when a revision is generated;
upgrading needs none.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
