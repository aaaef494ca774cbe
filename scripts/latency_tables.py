#!/usr/bin/env python3
"""Formats the results of `cargo bench --bench stops` (issue 3) or
`cargo bench --bench compare` (issue 7) as the markdown tables of
docs/benchmarks.md. Only formats docs: nothing in the build or the tests
needs it.

Usage: scripts/latency_tables.py stops|compare [TARGET_DIR]
TARGET_DIR defaults to $CARGO_TARGET_DIR, else target. It reads
TARGET_DIR/criterion (criterion's saved samples) and the per-operation
latencies the bench binary wrote: TARGET_DIR/stop-latency.json or
TARGET_DIR/compare-latency.json.

Figures:
- p50 / p99 / max: percentiles (nearest rank) of every operation of the
  benchmark timed on its own (`Instant` around each stop, pause, reader
  chunk or update), as the bench binary recorded them;
- criterion: criterion's median of the per-sample means, per operation;
- × CL, × PU: the p50 as a multiple of the cache-line and park/unpark
  round-trip floors measured in the same run (criterion medians), first
  thing in the run; the run measures them again last, and both are shown.
"""

import json
import os
import sys

from criterion_table import fmt_time, load


def target_dir():
    if len(sys.argv) > 2:
        return sys.argv[2]
    return os.environ.get("CARGO_TARGET_DIR", "target")


def read_latency(target, name):
    with open(os.path.join(target, name)) as f:
        return json.load(f)


def fmt_multiple(x):
    if x < 0.1:
        return f"{x:.2f}×"
    return f"{x:.2g}×" if x < 10 else f"{x:,.0f}×"


def floors(crit, group):
    cache = load(crit, f"{group}/cache_line_round_trip")
    park = load(crit, f"{group}/park_unpark_round_trip")
    return cache, park


def multiples(ns, fl):
    cache, park = fl
    if not cache or not park:
        return ""
    return f"{fmt_multiple(ns / cache[0])} CL, {fmt_multiple(ns / park[0])} PU"


# Other processes' CPU use during a benchmark (percent of one CPU) from which
# the cell is flagged: the machine is shared.
FOREIGN_FLAG = 10


def foreign(notes, bench_id):
    """The flag for a benchmark that shared the machine, else ""."""
    pct = int(notes.get(f"foreign_cpu/{bench_id}", 0))
    return f"<br>⚠ other processes: {pct}% of a CPU" if pct >= FOREIGN_FLAG else ""


def lat_cell(lat, crit_result, fl, bold=True):
    """p50 (p99, max), criterion median, floor multiples of the p50."""
    if lat is None:
        return "—"
    p50 = fmt_time(lat["p50"])
    out = f"**{p50}**" if bold else p50
    out += f" (p99 {fmt_time(lat['p99'])}, max {fmt_time(lat['max'])})"
    if crit_result:
        out += f"<br>criterion {fmt_time(crit_result[0])}"
    m = multiples(lat["p50"], fl)
    if m:
        out += f"<br>{m}"
    return out


def floor_table(crit, group, notes):
    """The floors measured first (used for the multiples) and last."""
    first, last = floors(crit, group), floors(crit, group + "_last")
    print("| floor (one round trip, CPU 0 <-> CPU 1) | first in the run: median (p99) "
          "| last in the run: median (p99) |")
    print("|---|---|---|")
    for i, label in enumerate(("cache-line ping-pong (CL)", "thread park/unpark (PU)")):
        cells = [f"**{fmt_time(r[i][0])}** ({fmt_time(r[i][1])}){foreign(notes, g)}" if r[i] else "—"
                 for r, g in ((first, group), (last, group + "_last"))]
        print(f"| {label} | {' | '.join(cells)} |")


STOP_ROWS = [
    ("stop_machine(noop, None)", "task on worker 0", "stop_machine_{load}_task"),
    ("stop_machine(noop, None)", "thread, `block_on`", "stop_machine_{load}_thread"),
    ("stop_machine_blocking(noop, None)", "thread", "stop_machine_blocking_{load}_thread"),
    ("stop_cpus(all, noop)", "task on worker 0", "stop_cpus_{load}_task"),
    ("stop_two_cpus(0, 1, noop)", "task on worker 0", "stop_two_cpus_{load}_task"),
]
LOADS = [("idle", "parked"), ("busy", "busy (`yield_now` loops)"), ("tcp", "TCP echo")]


def stops(target):
    crit = os.path.join(target, "criterion")
    data = read_latency(target, "stop-latency.json")
    notes, lat = data["notes"], data["latency_ns"]
    fl = floors(crit, "stops_floor")
    labels = [("cpus", "workers = CPUs"), ("2xcpus", "workers = 2 × CPUs")]
    head = " | ".join(f"{text} ({notes.get('workers_' + key, '?')})" for key, text in labels)
    print(f"| stop | caller | load | {head} |")
    print("|---|---|---|---|---|")
    for op, caller, pattern in STOP_ROWS:
        for load_key, load_label in LOADS:
            bench = pattern.format(load=load_key)
            cells = []
            for key, _ in labels:
                bench_id = f"stops_{key}/{bench}"
                cells.append(lat_cell(lat.get(bench_id), load(crit, bench_id), fl) + foreign(notes, bench_id))
            if all(c == "—" for c in cells):
                continue
            print(f"| {op} | {caller} | {load_label} | {' | '.join(cells)} |")
    print()
    floor_table(crit, "stops_floor", notes)
    print()
    for key, text in labels:
        rate = notes.get(f"tcp_echo_round_trips_per_s_{key}")
        if rate:
            print(f"- TCP echo load, {text}: {int(rate):,} round trips/s over the stops.")
    print()
    print("Targets (2 CPUs, caller a task on a worker, workers = CPUs):")
    for load_key, target_ns in (("idle", 2_000), ("busy", 5_000)):
        entry = lat.get(f"stops_cpus/stop_machine_{load_key}_task")
        if entry:
            met = "met" if entry["p50"] < target_ns else "NOT met"
            print(f"- {load_key}: p50 {fmt_time(entry['p50'])} against < {fmt_time(target_ns)}: {met}")


def compare(target):
    crit = os.path.join(target, "criterion")
    data = read_latency(target, "compare-latency.json")
    notes, lat = data["notes"], data["latency_ns"]
    fl = floors(crit, "compare_floor")

    names = [("plain", "plain `&Config` (stop_machine writes)"), ("arc_swap_load", "`ArcSwap::load()`"),
             ("rwlock_read", "`RwLock::read()`")]
    plain = load(crit, "config_read/plain")
    print("| one config read | alone, 1 thread | ÷ plain | readers on every worker, no writer "
          "| readers on every worker, writer every ~1 ms |")
    print("|---|---|---|---|---|")
    for key, label in names:
        alone = load(crit, f"config_read/{key}")
        cells = [f"**{fmt_time(alone[0])}** (p99 {fmt_time(alone[1])}){foreign(notes, 'config_read/' + key)}"
                 if alone else "—",
                 f"{alone[0] / plain[0]:.1f}" if alone and plain else "—"]
        for w in ("no_writer", "writer"):
            bench_id = f"config_read_writer/{key}_{w}"
            r = load(crit, bench_id)
            cells.append(f"**{fmt_time(r[0])}** (p99 {fmt_time(r[1])}){foreign(notes, bench_id)}" if r else "—")
        print(f"| {label} | {' | '.join(cells)} |")
    print()
    print("| reader chunk (1,000 reads + 1 `yield_now`) on worker 0 | no writer: p50 / p99 / max "
          "| writer every ~1 ms: p50 / p99 / max |")
    print("|---|---|---|")
    for key, label in names:
        cells = []
        for w in ("no_writer", "writer"):
            e = lat.get(f"config_read_writer/{key}_{w}")
            cells.append(f"{fmt_time(e['p50'])} / {fmt_time(e['p99'])} / {fmt_time(e['max'])}" if e else "—")
        print(f"| {label} | {' | '.join(cells)} |")
    print()
    print("| one update by the writer thread | p50 | p99 | max | updates |")
    print("|---|---|---|---|---|")
    for key, label in (("stop_machine_blocking", "`stop_machine_blocking` + plain write"),
                       ("arc_swap_store", "`ArcSwap::store(Arc::new(..))`"),
                       ("rwlock_write", "`*RwLock::write() = ..`")):
        e = lat.get(f"config_write/{key}")
        if e:
            print(f"| {label} | **{fmt_time(e['p50'])}** | {fmt_time(e['p99'])} | {fmt_time(e['max'])} | {e['n']:,} |")
    print()
    print("| one task poll (32 `black_box` steps of work + `yield_now`), 1 worker | criterion median | p99 |")
    print("|---|---|---|")
    base = load(crit, "world_lock_poll/work_yield")
    for key, label in (("work_yield", "work, yield (stop_machine's hot path)"),
                       ("read_guard_work_yield", "world lock: read guard held over the work, yield"),
                       ("read_guard", "world lock: read guard acquire + release only")):
        r = load(crit, f"world_lock_poll/{key}")
        if r:
            extra = ""
            if key == "read_guard_work_yield" and base:
                extra = f" (+{fmt_time(r[0] - base[0])} per poll)"
            print(f"| {label} | **{fmt_time(r[0])}**{extra}{foreign(notes, 'world_lock_poll/' + key)} "
                  f"| {fmt_time(r[1])} |")
    print()
    print("| pause round trip, caller a task on worker 0, busy runtime | world lock (`write().await`) "
          "| stop_machine(noop, None) |")
    print("|---|---|---|")
    for n in (1, 10, 100):
        cells = []
        for kind in ("world_lock", "stop_machine"):
            bench_id = f"pause/{kind}_{n}_tasks"
            cell = lat_cell(lat.get(bench_id), load(crit, bench_id), fl) + foreign(notes, bench_id)
            rate = notes.get(f"task_polls_per_s_per_worker_{kind}_{n}_tasks")
            if rate:
                cell += f"<br>working tasks: {int(rate) / 1e6:.2f} M polls/s per worker"
            cells.append(cell)
        print(f"| {n} task{'s' if n > 1 else ''} per worker | {' | '.join(cells)} |")
    print()
    floor_table(crit, "compare_floor", notes)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("stops", "compare"):
        sys.exit(__doc__)
    target = target_dir()
    if sys.argv[1] == "stops":
        stops(target)
    else:
        compare(target)


if __name__ == "__main__":
    main()
