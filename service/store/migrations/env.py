"""Alembic environment of the metadata store.

Run migrations with ``yardstick migrate`` (or :func:`service.store.migrations.upgrade`), which
hands this script a connection that already holds the migration lock; the plain ``alembic``
command works too with ``-x url=<database url>`` (for ``alembic revision --autogenerate``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.store import tables

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("pass the database URL: alembic -x url=sqlite:///data/yardstick.db ...")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=tables.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        from service.store.migrations import migration_engine

        engine = migration_engine(url)
        try:
            with engine.begin() as conn:
                _run(conn)
        finally:
            engine.dispose()
