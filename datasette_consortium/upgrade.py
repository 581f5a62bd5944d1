"""Bring a recorder's store up to date when Datasette starts.

The recorder migrates its store every time it opens it; a store that only
Datasette has opened since an upgrade would otherwise lack what the canned
queries read (the leaderboard's daily rollups, for one).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from recorder.evaluation_store import MIGRATIONS, EvaluationStore, StoreError

if TYPE_CHECKING:
    from datasette.database import Database


async def pending_migrations(db: Database) -> list[str]:
    if "_migrations" not in await db.table_names():
        return [name for name, _ in MIGRATIONS]
    applied = {row[0] for row in await db.execute("select name from _migrations")}
    return [name for name, _ in MIGRATIONS if name not in applied]


async def bring_up_to_date(db: Database) -> bool:
    """Apply pending migrations and settle runs whose recorder died.

    Runs left ``running`` by a process that is gone are marked
    ``interrupted``, as the recorder's own commands do, so that canned queries
    such as ``recent_runs`` agree with the run pages. Returns whether the
    store is now current.

    Limitation: a store served immutable (``-i``) or from a read-only file is
    left as it is, and queries that need the newer schema answer with an error.
    """
    if not db.is_mutable or not db.path or getattr(db, "is_memory", False):
        return not await pending_migrations(db)

    def migrate() -> None:
        with EvaluationStore(db.path) as store:
            store.mark_interrupted_runs()

    try:
        await asyncio.get_running_loop().run_in_executor(None, migrate)
    except StoreError:
        return False
    return True
