#!/usr/bin/env python3
"""Formats the results of `cargo bench --bench runtime` as the markdown
tables of docs/benchmarks.md. Only formats docs: nothing in the build or the
tests needs it.

Usage: scripts/criterion_table.py [CRITERION_DIR]
       scripts/criterion_table.py --groups GROUP[,GROUP...] [CRITERION_DIR]
CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion, else target/criterion.
With --groups, one table of every benchmark in those groups (e.g. the
`read,grace,defer` groups of `cargo bench --bench quiescence`).

Every figure is the time of ONE operation (a spawn+join, a yield, a round
trip): criterion's per-iteration time divided by the benchmark's
`Throughput::Elements`.
- median: criterion's median estimate (estimates.json);
- p99: the 99th percentile (linear interpolation) of the per-sample means
  in sample.json. Each sample averages many operations, so this is the
  spread between samples (run-to-run noise, e.g. from the shared VM), not
  the tail latency of a single operation.
"""

import json
import os
import sys

CACHE = "floor/cache_line_round_trip"
PARK = "floor/park_unpark_round_trip"

# (row label, stop-machine, tokio current_thread, tokio multi_thread)
ROWS = [
    ("spawn+join, 1 worker", "spawn_join/stop_machine_1w", "spawn_join/tokio_current_thread",
     "spawn_join/tokio_multi_thread"),
    ("spawn+join, 2 workers, spawn local", "spawn_join/stop_machine_2w", None,
     "spawn_join/tokio_multi_thread"),
    ("spawn+join, 2 workers, spawn_on(i % 2)", "spawn_join/stop_machine_2w_spread", None,
     "spawn_join/tokio_multi_thread"),
    ("yield_now, 1 worker", "yield/stop_machine_1w", "yield/tokio_current_thread",
     "yield/tokio_multi_thread"),
    ("cross-worker Notify round trip (current_thread: 2 runtimes on 2 pinned threads)", "cross_worker_wake/stop_machine_2w",
     "cross_worker_wake/tokio_current_thread_x2", "cross_worker_wake/tokio_multi_thread"),
    ("stop_one_cpu, task -> idle worker", "stop_one_cpu/task_to_idle_worker", None, None),
    ("stop_one_cpu, task -> busy worker", "stop_one_cpu/task_to_busy_worker", None, None),
    ("stop_one_cpu, thread block_on -> idle worker", "stop_one_cpu/thread_to_idle_worker", None, None),
]


def criterion_dir(args):
    if args:
        return args[0]
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(target, "criterion")


def percentile(values, q):
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def load(root, bench_id):
    """(median ns/op, p99 ns/op) of one benchmark, or None if not run."""
    new = os.path.join(root, *bench_id.split("/"), "new")
    try:
        with open(os.path.join(new, "benchmark.json")) as f:
            elements = json.load(f).get("throughput", {}).get("Elements", 1)
        with open(os.path.join(new, "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        with open(os.path.join(new, "sample.json")) as f:
            sample = json.load(f)
    except FileNotFoundError:
        return None
    per_op = [t / i / elements for i, t in zip(sample["iters"], sample["times"])]
    return median / elements, percentile(per_op, 0.99)


def fmt_time(ns):
    if ns < 1_000:
        return f"{ns:.3g} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.3g} µs"
    return f"{ns / 1_000_000:.3g} ms"


def fmt_multiple(x):
    return f"{x:.2g}×" if x < 10 else f"{x:,.0f}×"


def cell(result, floors):
    if result is None:
        return "—"
    median, p99 = result
    out = f"**{fmt_time(median)}** (p99 {fmt_time(p99)})"
    cache, park = floors
    if cache and park:
        out += f"<br>{fmt_multiple(median / cache[0])} CL, {fmt_multiple(median / park[0])} PU"
    return out


def groups_table(groups, root):
    print("| benchmark (one operation) | median | p99 |")
    print("|---|---|---|")
    for group in groups:
        base = os.path.join(root, group)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            result = load(root, f"{group}/{name}")
            if result:
                print(f"| {group}/{name} | **{fmt_time(result[0])}** | {fmt_time(result[1])} |")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--groups"]:
        groups_table(args[1].split(","), criterion_dir(args[2:]))
        return
    root = criterion_dir(args)
    floors = (load(root, CACHE), load(root, PARK))
    print("| benchmark (one operation) | stop-machine | tokio current_thread | tokio multi_thread "
          "| stop-machine ÷ current_thread |")
    print("|---|---|---|---|---|")
    for label, sm, ct, mt in ROWS:
        r = [load(root, b) if b else None for b in (sm, ct, mt)]
        ratio = f"{r[0][0] / r[1][0]:.2f}" if r[0] and r[1] else "—"
        print(f"| {label} | {cell(r[0], floors)} | {cell(r[1], floors)} | {cell(r[2], floors)} | {ratio} |")
    print()
    print("| floor (one round trip, CPU 0 <-> CPU 1) | median | p99 |")
    print("|---|---|---|")
    for label, result in (("cache-line ping-pong (CL)", floors[0]), ("thread park/unpark (PU)", floors[1])):
        if result:
            print(f"| {label} | **{fmt_time(result[0])}** | {fmt_time(result[1])} |")
        else:
            print(f"| {label} | — | — |")


if __name__ == "__main__":
    main()
