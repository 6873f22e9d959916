"""Several processes on one file: leases (and starts) have one winner, fenced writes stay
whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ranvier.stores.sqlite import SqlitePersistenceStore
from tests.sqlite.helpers import spawn

TRACES = 60


async def test_two_processes_contending_for_leases_have_one_winner_each(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
    children = [spawn("contend", str(path), holder, str(TRACES)) for holder in ("a", "b")]
    for child in children:  # both connected, then both start at once
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120) for child in children]
    won: Counter[str] = Counter()
    winner: dict[str, str] = {}
    for holder, child, (out, err) in zip(("a", "b"), children, outputs, strict=True):
        assert child.returncode == 0, err
        won.update(line.split()[1] for line in out.splitlines())
        winner.update((line.split()[1], holder) for line in out.splitlines())
    assert sorted(won) == sorted(f"shared-{i}" for i in range(TRACES))
    assert set(won.values()) == {1}  # every trace won exactly once

    async with SqlitePersistenceStore(path) as store:
        for i in range(TRACES):
            trace = await store.load(f"shared-{i}")
            assert trace is not None and [e.step for e in trace.events] == [0, 1, 2]
            assert (trace.input, trace.attempts) == ({"by": winner[f"shared-{i}"]}, 1)
            lease = await store.get_lease(f"shared-{i}")
            assert lease is not None and lease.token == 1
