"""Base against branch for the backfill, interleaved: `python -m bench.ingest_ab BASE_TREE`.

Seeds one mailbox (bench/fixture.py), reads it once cold, then runs in turn, `--rounds` times:
bench.worker parting-ingest from BASE_TREE (another checkout, e.g. `git archive <commit> | tar -x
-C ../base`), the same from this checkout, and the bare imapclient loop. Each run is a fresh
interpreter with this checkout's virtualenv (`python -m` imports the package from the working
folder first) and a fresh empty database. Prints every run and the medians: wall, CPU (user+sys,
the worker process's included when the run reports it), parting / bare, peak RSS, and whether
both stored the same number of messages. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench import ROOT, unit_environment
from bench.fixture import Mailbox
from bench.ingest_bench import bare_args


def run_in(tree: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.worker", *args], capture_output=True, text=True, cwd=tree,
                          env=unit_environment())
    if done.returncode != 0:
        raise RuntimeError(f"bench.worker {args[0]} in {tree} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_ab", description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args(argv)
    trees = {"base": args.base.resolve(), "branch": ROOT}
    print(f"load before: {os.getloadavg()}", flush=True)
    with Mailbox.create(args.messages, args.clients) as box:
        run_in(ROOT, *bare_args(box))  # the cold pass: Dovecot reads every file once
        results: dict[str, list[dict]] = {"base": [], "branch": [], "bare": []}
        for number in range(args.rounds):
            for name, tree in trees.items():
                run = run_in(tree, "parting-ingest", str(box.config()))
                results[name].append(run)
                print(f"round {number + 1} {name}: wall {run['seconds']:.2f} s, cpu {run['cpu_seconds']:.2f} s"
                      f" (+worker {run.get('worker_cpu_seconds', 0.0):.2f} s), stored {run['stored']},"
                      f" parse {run['parse_seconds']:.2f} commit {run['commit_seconds']:.2f}"
                      f" bodies {run['bodies_seconds']:.2f}, hwm {run['hwm_mb']:.0f} MB"
                      f" (worker {run.get('worker_hwm_mb', 0.0):.0f} MB), waited for the worker"
                      f" {run.get('wait_headers_seconds', 0.0):.2f} s (headers)"
                      f" {run.get('wait_bodies_seconds', 0.0):.2f} s (bodies)", flush=True)
            bare = run_in(ROOT, *bare_args(box))
            results["bare"].append(bare)
            print(f"round {number + 1} bare: wall {bare['seconds']:.2f} s", flush=True)
    bare_wall = statistics.median(r["seconds"] for r in results["bare"])
    for name in trees:
        runs = results[name]
        wall = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] + r.get("worker_cpu_seconds", 0.0) for r in runs)
        print(f"{name}: median wall {wall:.2f} s, cpu {cpu:.2f} s, parting / bare {100 * bare_wall / wall:.0f}%,"
              f" hwm {statistics.median(r['hwm_mb'] for r in runs):.0f} MB,"
              f" stored {sorted({r['stored'] for r in runs})}")
    print(f"bare: median wall {bare_wall:.2f} s; load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
