#!/usr/bin/env python3
"""The report of scripts/load-bench: reads OUT/run-*/{stop-machine,tokio,go}.
{json,wrk,meta} and OUT/machine, prints per run the table (req/s, wrk
p50/p99, errors, stop p50/p99/max, the three segments of each stop, torn
reads, the foreign CPU load) and the ratios against the issue's targets,
then the same pooled over every run; writes OUT/summary.json; draws the
stop latency CDF under load (stop-machine against Go) as an SVG.

Only the stops made while wrk ran count (their wall-clock request time
lies between wrk's start and end); the others are reported as a count.

Usage: scripts/load_report.py OUT [--svg PATH]
Standard library only.
"""

import glob
import json
import math
import os
import re
import sys

from criterion_table import fmt_time

SERVERS = ["stop-machine", "tokio", "go"]
LABELS = {"stop-machine": "hyper on stop-machine, stop_machine every 5 ms",
          "tokio": "hyper on tokio multi_thread, no stops",
          "go": "Go net/http, ReadMemStats every 5 ms"}
SEGMENTS = [("request_to_stopped_ns", "request → all stopped"),
            ("stopped_ns", "stopped (`f`)"),
            ("resume_ns", "`f` end → caller resumed")]
# The targets.
TARGET_P50 = 0.2   # stop_machine p50 ≤ 0.2 × Go's ReadMemStats p50
TARGET_P99 = 0.5   # stop_machine p99 ≤ 0.5 × Go's p99
TARGET_RPS = 0.95  # req/s with stops ≥ 0.95 × tokio without stops


def pct(sorted_values, p):
    """Nearest-rank percentile of a sorted list (as the Rust side does)."""
    if not sorted_values:
        return None
    n = len(sorted_values)
    return sorted_values[min(max(math.ceil(n * p / 100), 1), n) - 1]


def read_meta(path):
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                meta[key] = value
    return meta


def read_wrk(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    m = re.search(r"^WRK_JSON (\{.*\})$", text, re.M)
    return json.loads(m.group(1)) if m else None


def load_server(run_dir, name):
    """One server's figures in one run, or None when it did not run."""
    path = os.path.join(run_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f)
    meta = read_meta(os.path.join(run_dir, f"{name}.meta"))
    wrk = read_wrk(os.path.join(run_dir, f"{name}.wrk"))
    stops = data.get("stops", {})
    lo = int(meta.get("wrk_start_unix_ns", 0))
    hi = int(meta.get("wrk_end_unix_ns", 1 << 63))
    keep = [i for i, at in enumerate(stops.get("at_unix_ns", [])) if lo <= at <= hi]
    columns = {k: [v[i] for i in keep] for k, v in stops.items() if k != "at_unix_ns"}
    out = {"name": name, "data": data, "meta": meta, "wrk": wrk, "stops": columns,
           "stops_outside_load": len(stops.get("at_unix_ns", [])) - len(keep)}
    # The CPU time other processes took while wrk ran, in CPUs.
    try:
        tck = int(meta["clk_tck"])
        wall = (hi - lo) / 1e9
        foreign = int(meta["machine_busy_ticks"]) - int(meta["server_ticks"]) - int(meta["wrk_ticks"])
        out["foreign_cpus"] = max(foreign, 0) / tck / wall
        out["server_cpus"] = int(meta["server_ticks"]) / tck / wall
        out["wrk_cpus"] = int(meta["wrk_ticks"]) / tck / wall
        out["preempted_per_s"] = int(meta["server_preempted"]) / wall
    except (KeyError, ValueError, ZeroDivisionError):
        pass
    return out


def figures(server):
    """The numbers of one table row."""
    wrk = server["wrk"] or {}
    row = {"server": server["name"], "pinned": server["data"].get("pinned")}
    if wrk:
        row["rps"] = wrk["requests"] / (wrk["duration_us"] / 1e6)
        row["requests"] = wrk["requests"]
        row["wrk_p50_ns"] = wrk["p50_us"] * 1e3
        row["wrk_p99_ns"] = wrk["p99_us"] * 1e3
        row["wrk_max_ns"] = wrk["max_us"] * 1e3
        row["socket_errors"] = sum(wrk[k] for k in ("connect_errors", "read_errors", "write_errors",
                                                   "timeouts"))
        row["non_2xx"] = wrk["status_errors"]
    data = server["data"]
    row["torn_reads"] = data.get("torn_reads", 0)
    row["stop_errors"] = data.get("stop_errors", 0)
    row["connection_errors"] = data.get("connection_errors", 0)
    row["closed_mid_request"] = data.get("closed_mid_request", 0)
    total = sorted(server["stops"].get("total_ns", []))
    row["stops"] = len(total)
    row["stops_outside_load"] = server["stops_outside_load"]
    if total:
        row["stop_p50_ns"], row["stop_p99_ns"], row["stop_max_ns"] = pct(total, 50), pct(total, 99), total[-1]
    for key, _ in SEGMENTS:
        seg = sorted(server["stops"].get(key, []))
        if seg:
            row[key.replace("_ns", "") + "_p50_ns"] = pct(seg, 50)
            row[key.replace("_ns", "") + "_p99_ns"] = pct(seg, 99)
    for key in ("foreign_cpus", "server_cpus", "wrk_cpus", "preempted_per_s"):
        if key in server:
            row[key] = server[key]
    row["loadavg_before"] = server["meta"].get("loadavg_before", "?").replace(",", " ")
    return row


def t(ns):
    return "—" if ns is None else fmt_time(ns)


def table(rows):
    lines = ["| server | req/s | wrk p50 | wrk p99 | errors: socket / non-2xx | stops under load | "
             "stop p50 | stop p99 | stop max | request → all stopped p50 / p99 | stopped (`f`) p50 / p99 | "
             "`f` end → caller resumed p50 / p99 | torn reads | load avg before | other processes' CPU |",
             "|" + "---|" * 15]
    for r in rows:
        def seg(key):
            p50, p99 = r.get(f"{key}_p50_ns"), r.get(f"{key}_p99_ns")
            return "—" if p50 is None else f"{t(p50)} / {t(p99)}"
        errors = f"{r.get('socket_errors', '?')} / {r.get('non_2xx', '?')}"
        if r.get("connection_errors"):
            errors += f" (server: {r['connection_errors']} connection errors)"
        if r.get("stop_errors"):
            errors += f" ({r['stop_errors']} failed stops)"
        torn = str(r["torn_reads"]) if r["server"] != "go" else "—"
        foreign = f"{r['foreign_cpus']:.2f} CPUs" if "foreign_cpus" in r else "?"
        rps = f"{r['rps']:,.0f}" if "rps" in r else "—"
        stops = str(r["stops"]) if r["stops"] else "—"
        label = LABELS[r["server"]] + (", workers unpinned" if r.get("pinned") is False
                                        and r["server"] == "stop-machine" else "")
        lines.append(f"| {label} | {rps} | {t(r.get('wrk_p50_ns'))} | {t(r.get('wrk_p99_ns'))} | "
                     f"{errors} | {stops} | {t(r.get('stop_p50_ns'))} | {t(r.get('stop_p99_ns'))} | "
                     f"{t(r.get('stop_max_ns'))} | {seg('request_to_stopped')} | {seg('stopped')} | "
                     f"{seg('resume')} | {torn} | {r['loadavg_before']} | {foreign} |")
    return "\n".join(lines)


def ratios(rows):
    """The issue's ratios and targets, from one run's (or the pooled) rows."""
    by = {r["server"]: r for r in rows}
    sm, tk, go = by.get("stop-machine"), by.get("tokio"), by.get("go")
    out = []

    def add(what, value, target, ok):
        out.append({"what": what, "value": value, "target": target, "met": ok})

    if sm and go and sm.get("stop_p50_ns") and go.get("stop_p50_ns"):
        v = sm["stop_p50_ns"] / go["stop_p50_ns"]
        add("stop p50: stop_machine ÷ Go ReadMemStats", v, f"≤ {TARGET_P50}", v <= TARGET_P50)
        v = sm["stop_p99_ns"] / go["stop_p99_ns"]
        add("stop p99: stop_machine ÷ Go ReadMemStats", v, f"≤ {TARGET_P99}", v <= TARGET_P99)
    else:
        add("stop p50 / p99: stop_machine ÷ Go ReadMemStats", None, f"≤ {TARGET_P50} / ≤ {TARGET_P99}", None)
    if sm and tk and sm.get("rps") and tk.get("rps"):
        v = sm["rps"] / tk["rps"]
        add("req/s: stop-machine with stops ÷ tokio multi_thread without", v, f"≥ {TARGET_RPS}", v >= TARGET_RPS)
    if sm:
        errors = sum(sm.get(k, 0) or 0 for k in ("socket_errors", "non_2xx", "stop_errors", "connection_errors"))
        add("errors on stop-machine (socket, non-2xx, failed stops, server connection errors)", errors, "0", errors == 0)
        add("torn reads on stop-machine", sm["torn_reads"], "0", sm["torn_reads"] == 0)
    return out


def ratio_table(rs):
    lines = ["| | measured | target | met |", "|---|---|---|---|"]
    for r in rs:
        v = r["value"]
        shown = "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
        met = {True: "**yes**", False: "**no**", None: "— (Go skipped)"}[r["met"]]
        lines.append(f"| {r['what']} | {shown} | {r['target']} | {met} |")
    return "\n".join(lines)


def pool(servers):
    """One server's runs as one: stops concatenated, wrk figures summed or
    taken at their worst (latency percentiles: the mean over runs)."""
    servers = [s for s in servers if s]
    if not servers:
        return None
    out = {"name": servers[0]["name"], "data": {"pinned": servers[0]["data"].get("pinned")}, "meta": {}, "stops": {},
           "stops_outside_load": sum(s["stops_outside_load"] for s in servers)}
    for key in ("torn_reads", "stop_errors", "connection_errors", "closed_mid_request"):
        out["data"][key] = sum(s["data"].get(key, 0) for s in servers)
    for key in servers[0]["stops"]:
        out["stops"][key] = [v for s in servers for v in s["stops"].get(key, [])]
    wrks = [s["wrk"] for s in servers if s["wrk"]]
    if wrks:
        wrk = {k: sum(w[k] for w in wrks) for k in wrks[0]}
        for k in ("p50_us", "p90_us", "p99_us", "p999_us", "mean_us"):
            wrk[k] = sum(w[k] for w in wrks) / len(wrks)
        wrk["max_us"] = max(w["max_us"] for w in wrks)
        out["wrk"] = wrk
    else:
        out["wrk"] = None
    for key in ("foreign_cpus", "server_cpus", "wrk_cpus", "preempted_per_s"):
        vals = [s[key] for s in servers if key in s]
        if vals:
            out[key] = sum(vals) / len(vals)
    out["meta"]["loadavg_before"] = " / ".join(s["meta"].get("loadavg_before", "?").split(",")[0]
                                               for s in servers)
    return out


# ---------------------------------------------------------------------------
# The plot.
# ---------------------------------------------------------------------------

W, H = 1010, 500
TOP, BOTTOM = 60, 380
PANEL_W = 420
LEFTS = [70, 70 + PANEL_W + 80]
COLORS = {"stop-machine": "#4477aa", "go": "#ee7733"}
NAMES = {"stop-machine": "stop_machine (hyper on stop-machine)", "go": "Go runtime.ReadMemStats"}


def text(x, yy, s, size=12, anchor="middle", extra=""):
    return (f'<text x="{x:.1f}" y="{yy:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-family="sans-serif" {extra}>{s}</text>')


def draw(path, runs, pooled, title):
    """Left: the CDF of the stop latency, linear in the fraction; right: the
    fraction of stops slower than x, log scale, for the tail. Thick: every
    run pooled; thin: each run."""
    everything = [v for s in pooled.values() if s for v in s["stops"].get("total_ns", [])]
    if not everything:
        print("no stops to plot", file=sys.stderr)
        return
    lo = 10 ** math.floor(math.log10(max(min(everything), 1)))
    hi = 10 ** math.ceil(math.log10(max(everything) * 1.01))
    n_max = max(len(s["stops"].get("total_ns", [])) for s in pooled.values() if s)
    tail_lo = 10 ** -math.ceil(math.log10(max(n_max, 10)))

    def x(panel, ns):
        frac = (math.log10(min(max(ns, lo), hi)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return LEFTS[panel] + frac * PANEL_W

    def y_lin(f):
        return BOTTOM - f * (BOTTOM - TOP)

    def y_log(f):
        f = max(f, tail_lo)
        return TOP + (-math.log10(f)) / (-math.log10(tail_lo)) * (BOTTOM - TOP)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             text(W / 2, 22, title, 15, extra='font-weight="bold"')]
    for panel, (heading, ylabel) in enumerate([("CDF: fraction of stops ≤ x", "fraction ≤ x"),
                                               ("tail: fraction of stops > x (log)", "fraction > x")]):
        x0 = LEFTS[panel]
        parts.append(f'<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{BOTTOM - TOP}" fill="none" '
                     f'stroke="#888888"/>')
        parts.append(text(x0 + PANEL_W / 2, TOP - 8, heading, 13))
        parts.append(text(x0 + PANEL_W / 2, BOTTOM + 36, "stop latency (call → caller resumed), log scale",
                          11))
        parts.append(text(x0 - 50, (TOP + BOTTOM) / 2, ylabel, 11,
                          extra=f'transform="rotate(-90 {x0 - 50} {(TOP + BOTTOM) / 2})"'))
        e = round(math.log10(lo))
        while 10 ** e <= hi:
            xx = x(panel, 10 ** e)
            parts.append(f'<line x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{BOTTOM}" stroke="#dddddd"/>')
            parts.append(text(xx, BOTTOM + 16, fmt_time(10 ** e), 10))
            e += 1
        if panel == 0:
            for f in (0, 0.25, 0.5, 0.75, 1):
                yy = y_lin(f)
                parts.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x0 + PANEL_W}" y2="{yy:.1f}" '
                             f'stroke="#dddddd"/>')
                parts.append(text(x0 - 6, yy + 4, f"{f:g}", 10, "end"))
        else:
            f = 1.0
            while f >= tail_lo * 0.999:
                yy = y_log(f)
                parts.append(f'<line x1="{x0}" y1="{yy:.1f}" x2="{x0 + PANEL_W}" y2="{yy:.1f}" '
                             f'stroke="#dddddd"/>')
                parts.append(text(x0 - 6, yy + 4, f"{f:g}", 10, "end"))
                f /= 10

    def curve(panel, values, color, width, opacity):
        values = sorted(values)
        n = len(values)
        pts, last = [], None
        for i, v in enumerate(values):
            frac = (i + 1) / n if panel == 0 else (n - i - 1) / n
            if panel == 1 and frac <= 0:
                frac = tail_lo
            p = (x(panel, v), y_lin(frac) if panel == 0 else y_log(frac))
            if last is None or abs(p[0] - last[0]) + abs(p[1] - last[1]) > 0.6 or i == n - 1:
                pts.append(p)
                last = p
        d = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        return (f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
                f'stroke-opacity="{opacity}"/>')

    for name in ("stop-machine", "go"):
        for panel in (0, 1):
            if len(runs) > 1:
                for run in runs:
                    s = run.get(name)
                    if s and s["stops"].get("total_ns"):
                        parts.append(curve(panel, s["stops"]["total_ns"], COLORS[name], 1, 0.45))
            s = pooled.get(name)
            if s and s["stops"].get("total_ns"):
                parts.append(curve(panel, s["stops"]["total_ns"], COLORS[name], 2.2, 1))
    # The targets, from Go's pooled percentiles: on the CDF at 0.5, on the
    # tail at 0.01.
    go = pooled.get("go")
    if go and go["stops"].get("total_ns"):
        g = sorted(go["stops"]["total_ns"])
        for panel, (p, factor, yy) in ((0, (50, TARGET_P50, y_lin(0.5))), (1, (99, TARGET_P99, y_log(0.01)))):
            tx = x(panel, pct(g, p) * factor)
            parts.append(f'<line x1="{tx:.1f}" y1="{yy - 12:.1f}" x2="{tx:.1f}" y2="{yy + 12:.1f}" '
                         f'stroke="#228833" stroke-width="2.5"/>')
            right = tx > LEFTS[panel] + PANEL_W * 0.6
            parts.append(text(tx - 4 if right else tx + 4, yy - 16, f"target: p{p} ≤ {factor} × Go's", 10,
                              "end" if right else "start", 'fill="#228833"'))
    ly = H - 62
    for name in ("stop-machine", "go"):
        s = pooled.get(name)
        if not s or not s["stops"].get("total_ns"):
            continue
        v = sorted(s["stops"]["total_ns"])
        parts.append(f'<rect x="{LEFTS[0]}" y="{ly - 12}" width="14" height="14" fill="{COLORS[name]}"/>')
        parts.append(text(LEFTS[0] + 20, ly, f"{NAMES[name]}: p50 {fmt_time(pct(v, 50))}, "
                          f"p99 {fmt_time(pct(v, 99))}, max {fmt_time(v[-1])} ({len(v)} stops under load"
                          f"{', all runs' if len(runs) > 1 else ''})", 12, "start"))
        ly += 20
    if len(runs) > 1:
        parts.append(text(LEFTS[0], ly, "thick: all runs pooled; thin: each run", 11, "start"))
    parts.append("</svg>")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"wrote {path}")


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    out_dir, svg = args[0], None
    if "--svg" in args:
        svg = args[args.index("--svg") + 1]
    machine = read_meta(os.path.join(out_dir, "machine"))
    run_dirs = sorted(glob.glob(os.path.join(out_dir, "run-*")), key=lambda d: int(d.rsplit("-", 1)[1]))
    if not run_dirs:
        sys.exit(f"no runs under {out_dir}")
    runs = [{name: load_server(d, name) for name in SERVERS} for d in run_dirs]

    for key in ("command", "commit", "nproc", "cpu", "kernel", "rustc", "wrk", "go"):
        if key in machine:
            print(f"{key}: {machine[key]}")
    summary = {"machine": machine, "runs": []}
    for i, run in enumerate(runs, 1):
        rows = [figures(s) for name, s in run.items() if s]
        rs = ratios(rows)
        summary["runs"].append({"rows": rows, "ratios": rs})
        print(f"\n### Run {i} of {len(runs)}\n")
        print(table(rows))
        closed = [f"{r['server']} {r['closed_mid_request']}" for r in rows if r.get("closed_mid_request")]
        cpu = [f"{r['server']} {r['server_cpus']:.2f} + wrk {r['wrk_cpus']:.2f}"
               + (f", server threads preempted {r['preempted_per_s']:,.0f}/s" if "preempted_per_s" in r else "")
               for r in rows if "server_cpus" in r]
        if cpu:
            print(f"\nCPUs used while wrk ran: {'; '.join(cpu)}.")
        if closed:
            print("\nConnections wrk closed with a request in flight when its time was up (hyper's "
                  f"IncompleteMessage; not errors): {', '.join(closed)}.")
        print()
        print(ratio_table(rs))
        if not run.get("go"):
            print("\nNOTE: no Go results in this run (Go skipped or failed).")
    pooled = {name: pool([run[name] for run in runs]) for name in SERVERS}
    if len(runs) > 1:
        rows = [figures(s) for s in pooled.values() if s]
        rs = ratios(rows)
        summary["pooled"] = {"rows": rows, "ratios": rs}
        print(f"\n### All {len(runs)} runs pooled (stops concatenated; req/s over the total time; "
              "wrk percentiles: the mean of the runs')\n")
        print(table(rows))
        print()
        print(ratio_table(rs))
        print("\nEach ratio, run by run:")
        for j, r in enumerate(rs):
            vals = [run_rs["ratios"][j]["value"] for run_rs in summary["runs"]
                    if j < len(run_rs["ratios"])]
            shown = ", ".join("—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
                              for v in vals)
            print(f"- {r['what']}: {shown} (target {r['target']})")
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"\nwrote {os.path.join(out_dir, 'summary.json')}")
    if svg:
        conns = re.search(r"CONNECTIONS=(\d+)", machine.get("command", ""))
        secs = re.search(r"LOAD_SECONDS=(\d+)", machine.get("command", ""))
        title = (f"Stop latency under wrk load ({conns.group(1) if conns else '?'} connections, "
                 f"{secs.group(1) if secs else '?'} s × {len(runs)} run{'s' if len(runs) > 1 else ''}, "
                 f"{machine.get('nproc', '?')} CPUs): stop_machine against Go's ReadMemStats")
        draw(svg, runs, pooled, title)


if __name__ == "__main__":
    main()
