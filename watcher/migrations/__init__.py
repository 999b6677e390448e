"""Alembic migrations of the state database; applied by `vote-watcher db upgrade` (see `watcher.store.migrate`)."""
