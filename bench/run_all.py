"""Run every benchmark, one process each, and print their figures.

Usage: python -m bench.run_all [--quick] [--only embedded,postgres,...] [--write]
With `--write`, each benchmark's figures replace its section of docs/performance.md
(`make bench` does this). Each benchmark also runs alone: python -m bench.bench_postgres.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench import report

BENCHES = {
    "embedded": ["bench.bench_embedded"],
    "postgres": ["bench.bench_postgres"],
    "redis": ["bench.bench_redis"],
    "runtime": ["bench.bench_runtime"],
    "leases": ["bench.bench_leases"],
}
QUICK_FLAGS = {"redis": ["--n", "500"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument(
        "--write", action="store_true", help="put the figures into docs/performance.md"
    )
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}")
    failed = []
    for name in wanted:
        flags = (QUICK_FLAGS.get(name, ["--quick"])) if args.quick else []
        print(f"=== {name} ===", flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", *BENCHES[name], *flags],
            check=False,
            stdout=subprocess.PIPE,
            text=True,
        )
        print(done.stdout, end="", flush=True)
        print(f"=== {name}: {time.perf_counter() - start:.0f} s ===\n", flush=True)
        if done.returncode:
            failed.append(name)
        elif args.write:
            report.replace_section(f"bench:{name}", report.tables(done.stdout))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
