"""A writer process for the purge test: appends checkpoints until told to stop.

Prints the wall-clock time of every acknowledged append, one per line, once stopped
(printing as it goes would block on a full pipe).
usage: python -m tests.cli.purge_writer STORE_URL STOP_FILE
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from ranvier import PersistenceEnvelope
from ranvier.stores.url import open_store


async def main(url: str, stop: Path) -> None:
    store = await open_store(url)
    acknowledged: list[float] = []
    try:
        print("ready", flush=True)
        while not stop.exists():  # noqa: ASYNC240 (a stat between appends is the point)
            await store.append(
                PersistenceEnvelope(
                    trace_id="writer",
                    circuit="writer",
                    schematic_version="1",
                    step=len(acknowledged),
                )
            )
            acknowledged.append(time.time())
            # A steady writer, like a pipeline between steps. SQLite's lock wait is
            # polling, so a writer in a tight loop could starve the purge (documented).
            await asyncio.sleep(0.002)
    finally:
        await store.close()
    print("\n".join(map(str, acknowledged)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
