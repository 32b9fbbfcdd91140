"""Base against branch for the typed commands, interleaved: `python -m bench.commands_ab BASE_TREE`.

Runs each command of commands_bench.py (with --json) in a new process from BASE_TREE (another
checkout, e.g. `git worktree add --detach ../base <commit>`) and from this checkout, alternately,
on the store `python -m bench --only commands --keep-store` kept, with this checkout's virtualenv
(`python -m daemon` imports the package from the working folder first). Prints the median wall
and CPU (user+sys) milliseconds of each, and whether both printed the same JSON (the time of the run aside).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from bench import ROOT
from bench.commands_bench import COMMANDS, command_environment, kept_store, timed_in


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.commands_ab", description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the other checkout")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "parting-bench")
    args = parser.parse_args(argv)
    kept = kept_store(args.cache, args.messages, args.clients)
    if kept is None:
        parser.error("no kept store: run `python -m bench --only commands --keep-store` first")
    env = command_environment(args.cache / "pycache")
    trees = {"base": args.base.resolve(), "branch": ROOT}
    commands = {name: [sys.executable, "-m", "daemon", *(a.format(client=kept.clients[0].id) for a in argv_),
                       "--config", str(kept.config), "--json"] for name, argv_ in COMMANDS}
    outputs: dict[tuple[str, str], str] = {}
    for name, command in commands.items():  # warm the file and bytecode caches
        for tree, folder in trees.items():
            outputs[name, tree] = timed_in(command, folder, env)[2]
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        wall, cpu, _out = timed_in([sys.executable, "-c", "pass"], ROOT, env)
        samples.setdefault(("python -c pass", ""), []).append((wall, cpu))
        for name, command in commands.items():
            for tree, folder in trees.items():
                wall, cpu, _out = timed_in(command, folder, env)
                samples.setdefault((name, tree), []).append((wall, cpu))
    print(f"{args.rounds} rounds, load {load:.2f} -> {os.getloadavg()[0]:.2f}")
    for (name, tree), runs in samples.items():
        same = ""
        if tree == "branch":
            base, branch = (json.loads(outputs[name, t]) for t in ("base", "branch"))
            moment = {"now": None, "evaluated_at": None}  # the time of the run (explain names it evaluated_at)
            same = "same JSON" if {**base, **moment} == {**branch, **moment} else "JSON DIFFERS"
        print(f"{name:24} {tree:6}  wall {statistics.median(r[0] for r in runs):7.1f} ms"
              f"  CPU {statistics.median(r[1] for r in runs):7.1f} ms  {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
