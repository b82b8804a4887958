"""Alembic environment: always run with a connection handed in by archiver.db.engine."""

from alembic import context

from archiver.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `archiver init`, which supplies the connection")


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """APScheduler owns its job table; migrations leave it alone."""
    return not (type_ == "table" and name == "scheduler_jobs")


context.configure(
    connection=connection,
    include_object=include_object,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
