"""The soak tier: every campaign, in turn, again and again, for as long as asked.

    python -m tests.faults.soak --minutes 30          # what `make soak` runs
    python -m tests.faults.soak --minutes 3 --only kill-sqlite,network-postgres

Each run gets a fresh seed drawn from `--seed` (printed) and a longer fault phase than
the CI tier; at the end a table sums operations, faults injected by kind, kills,
restarts, traces checked and anomalies (must be 0), and `--json` keeps it for the docs.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.faults.catalog import CATALOG, Entry

CONNECTION_FAULTS = (
    "net_reset_before_request",
    "net_drop_answer",
    "net_black_holed",
    "net_half_opened",
    "net_reset_all",
)
FAULT_KINDS = {
    "connection cut before the request": ("net_reset_before_request",),
    "answer dropped after the server ran it": ("net_drop_answer",),
    "black-holed connection": ("net_black_holed",),
    "half-open connection": ("net_half_opened",),
    "all connections reset": ("net_reset_all",),
    "latency spike past the lease": ("switch_latency_spike",),
    "slow link (latency, bandwidth)": ("switch_slow_link",),
    "worker SIGKILL": ("kills",),
    "worker SIGSTOP": ("pauses",),
    "server crash and restart": ("restarts",),
    "disk full (write refused)": ("disk_full_errors",),
    "maxmemory (write refused)": ("maxmemory_errors",),
    "worker an hour off the store clock": ("skewed_workers",),
}

CHECKED = {
    "acks_checked": "acknowledged writes found in the store as acknowledged",
    "reruns": "steps re-run after an interruption (never after their checkpoint)",
    "lease_lost_seen": "writes and runs stopped by a lost lease (fencing)",
    "store_failures": "store failures seen = failures counted by the metric",
    "workers_checked": "worker processes whose failure counter was checked",
    "stale_reruns": "steps re-run by a stale worker (a known bug, not an anomaly yet)",
    "halt_conflicts": "runs ended by the halt's conflicting fault (a known bug, ditto)",
}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="fault phase per run (default: 20, less "
        "in a short soak so that every campaign runs at least once)",
    )
    parser.add_argument("--scale", type=float, default=3.0, help="fault rates x this")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", default="", help="entry ids, comma-separated")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ranvier-soak.json",
        help="where the totals, seeds and table are written",
    )
    return parser.parse_args()


def _entries(only: str) -> list[Entry]:
    wanted = {x.strip() for x in only.split(",") if x.strip()}
    entries = [e for e in CATALOG if not wanted or e.id in wanted]
    if not entries:
        raise SystemExit(f"no campaign matches {only!r}; ids: {[e.id for e in CATALOG]}")
    return entries


def run_one(
    entry: Entry, seed: int, seconds: float, scale: float
) -> tuple[Counter[str], list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix=f"ranvier-soak-{entry.id}-"))
    try:
        verdict = entry.run(seed, seconds, tmp, scale)
    except Exception as exc:  # a campaign that cannot run is an anomaly, not a crash
        return Counter(), [f"{entry.id} seed {seed} failed to run: {exc!r}"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    counts = verdict.counts
    if entry.campaign == "skew":
        counts["skewed_workers"] = counts["workers"]
    anomalies = [f"{entry.id} seed {seed}: {a}" for a in verdict.anomalies]
    return counts, anomalies


def main() -> None:
    args = _args()
    base = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(base)
    entries = _entries(args.only)
    weights = sum(e.soak_weight for e in entries)
    seconds = args.seconds or max(3.0, min(20.0, args.minutes * 60 / weights - 5))
    out = Path(tempfile.gettempdir()) / "ranvier-soak.log"
    logging.basicConfig(filename=out, level=logging.WARNING, force=True)
    print(
        f"soak: {args.minutes} min, seed {base} (--seed {base} replays the order), "
        f"{len(entries)} campaigns, runtime log in {out}",
        flush=True,
    )
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    anomalies: list[str] = []
    seeds: dict[str, list[int]] = defaultdict(list)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    n = 0
    while time.monotonic() < deadline:
        entry = entries[n % len(entries)]
        seed = rng.randrange(1 << 30)
        counts, found = run_one(entry, seed, seconds * entry.soak_weight, args.scale)
        totals[entry.id].update(counts)
        totals[entry.id]["runs"] += 1
        seeds[entry.id].append(seed)
        anomalies += found
        n += 1
    table = render(totals, anomalies)
    print(table)
    for line in anomalies:
        print("ANOMALY", line)
    print(f"totals, seeds and this table: {args.json}")
    args.json.write_text(
        json.dumps(_report(args, base, started, totals, seeds, anomalies), indent=1)
    )
    sys.exit(1 if anomalies else 0)


def _report(
    args: argparse.Namespace,
    base: int,
    started: float,
    totals: dict[str, Counter[str]],
    seeds: dict[str, list[int]],
    anomalies: list[str],
) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "seed": base,
        "seeds": seeds,
        "totals": {k: dict(v) for k, v in totals.items()},
        "anomalies": anomalies,
        "table": render(totals, anomalies),
    }


def render(totals: dict[str, Counter[str]], anomalies: list[str]) -> str:
    """The per-campaign table, then the faults by kind, as Markdown."""
    bad = Counter(a.split(" ", 1)[0] for a in anomalies)
    rows = [
        "| campaign | runs | operations | faults | kills | restarts | traces | anomalies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    whole: Counter[str] = Counter()
    for name, c in totals.items():
        whole.update(c)
        faults = sum(c[k] for kinds in FAULT_KINDS.values() for k in kinds)
        rows.append(
            f"| {name} | {c['runs']} | {c['operations']:,} | {faults:,} | "
            f"{c['kills']:,} | {c['restarts']:,} | {c['traces']:,} | {bad[name]} |"
        )
    faults = sum(whole[k] for kinds in FAULT_KINDS.values() for k in kinds)
    rows.append(
        f"| **all** | {whole['runs']} | {whole['operations']:,} | {faults:,} | "
        f"{whole['kills']:,} | {whole['restarts']:,} | {whole['traces']:,} | "
        f"{len(anomalies)} |"
    )
    rows += ["", "| fault injected | count |", "|---|---:|"]
    for label, kinds in FAULT_KINDS.items():
        rows.append(f"| {label} | {sum(whole[k] for k in kinds):,} |")
    rows.append(f"| connection faults, all kinds | {sum(whole[k] for k in CONNECTION_FAULTS):,} |")
    rows += ["", "| checked | count |", "|---|---:|"]
    rows += [f"| {label} | {whole[k]:,} |" for k, label in CHECKED.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    main()
