#!/usr/bin/env python3
"""Draws docs/stops-latency.svg from the results of `cargo bench --bench
stops`: the round trip of a no-op stop_machine against the load (parked,
busy, TCP echo) and the worker count (CPUs, 2 × CPUs), for a caller that is
a task on worker 0 and for one that is an outside thread. Bars are the p50,
whiskers reach the p99 (per-operation latencies); dashed lines are the two
floors of the same run. Plain SVG from string templates: python3 only.

Usage: scripts/stops_plot.py [TARGET_DIR] [OUT_SVG]
TARGET_DIR defaults to $CARGO_TARGET_DIR, else target; OUT_SVG to
docs/stops-latency.svg.
"""

import json
import math
import os
import sys

from criterion_table import fmt_time, load

LOADS = [("idle", "parked"), ("busy", "busy"), ("tcp", "TCP echo")]
WORKERS = [("cpus", "workers = CPUs", "#4477aa"), ("2xcpus", "workers = 2 × CPUs", "#ee7733")]
PANELS = [("stop_machine_{load}_task", "caller: a task on worker 0"),
          ("stop_machine_{load}_thread", "caller: an outside thread (block_on)")]
# Issue 3's targets, for the task caller with workers = CPUs.
TARGETS = {"idle": 2_000, "busy": 5_000}

W, H = 1010, 430
TOP, BOTTOM, LEFT = 60, 350, 70
PANEL_W = 390
LO, HI = 100, 100_000_000  # ns, log scale
RIGHT = LEFT + 2 * PANEL_W + 20


def y(ns):
    ns = min(max(ns, LO), HI)
    frac = (math.log10(ns) - math.log10(LO)) / (math.log10(HI) - math.log10(LO))
    return BOTTOM - frac * (BOTTOM - TOP)


def text(x, yy, s, size=12, anchor="middle", extra=""):
    return (f'<text x="{x:.1f}" y="{yy:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-family="sans-serif" {extra}>{s}</text>')


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join("docs", "stops-latency.svg")
    with open(os.path.join(target, "stop-latency.json")) as f:
        data = json.load(f)
    lat, notes = data["latency_ns"], data["notes"]
    crit = os.path.join(target, "criterion")
    cache = load(crit, "stops_floor/cache_line_round_trip")
    park = load(crit, "stops_floor/park_unpark_round_trip")

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             text(W / 2, 22, f"No-op stop_machine round trip on {notes.get('cpus', '?')} CPUs: "
                  "p50 (bar) and p99 (whisker), log scale", 15, extra='font-weight="bold"')]
    # Grid and axis labels: one line per decade.
    ticks = [10 ** e for e in range(2, 9) if LO <= 10 ** e <= HI]
    for v in ticks:
        yy = y(v)
        parts.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{RIGHT}" y2="{yy:.1f}" '
                     f'stroke="#dddddd" stroke-width="1"/>')
        parts.append(text(LEFT - 6, yy + 4, fmt_time(v), 11, "end"))
    for i, (pattern, title) in enumerate(PANELS):
        x0 = LEFT + i * (PANEL_W + 20)
        parts.append(f'<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{BOTTOM - TOP}" fill="none" '
                     f'stroke="#888888"/>')
        parts.append(text(x0 + PANEL_W / 2, TOP - 8, title, 13))
        group_w = PANEL_W / len(LOADS)
        bar_w = 34
        for j, (load_key, load_label) in enumerate(LOADS):
            gx = x0 + j * group_w
            parts.append(text(gx + group_w / 2, BOTTOM + 18, load_label, 12))
            target_ns = TARGETS.get(load_key)
            if i == 0 and target_ns:
                ty = y(target_ns)
                parts.append(f'<line x1="{gx + 6:.1f}" y1="{ty:.1f}" x2="{gx + group_w - 6:.1f}" y2="{ty:.1f}" '
                             f'stroke="#228833" stroke-width="2" stroke-dasharray="2,3"/>')
            for k, (wkey, _, color) in enumerate(WORKERS):
                entry = lat.get(f"stops_{wkey}/" + pattern.format(load=load_key))
                if not entry:
                    continue
                bx = gx + group_w / 2 - bar_w - 4 + k * (bar_w + 8)
                top = y(entry["p50"])
                parts.append(f'<rect x="{bx:.1f}" y="{top:.1f}" width="{bar_w}" height="{BOTTOM - top:.1f}" '
                             f'fill="{color}"/>')
                cx, p99 = bx + bar_w / 2, y(entry["p99"])
                parts.append(f'<line x1="{cx:.1f}" y1="{top:.1f}" x2="{cx:.1f}" y2="{p99:.1f}" '
                             f'stroke="black" stroke-width="1.2"/>')
                parts.append(f'<line x1="{cx - 7:.1f}" y1="{p99:.1f}" x2="{cx + 7:.1f}" y2="{p99:.1f}" '
                             f'stroke="black" stroke-width="1.2"/>')
                parts.append(text(cx, min(top, p99) - 4, fmt_time(entry["p50"]), 9,
                                  extra='paint-order="stroke" stroke="white" stroke-width="3"'))
    # The floors of the same run, across both panels.
    for result, label, color in ((cache, "cache-line floor", "#aa3377"),
                                 (park, "park/unpark floor", "#666666")):
        if result:
            yy = y(result[0])
            parts.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{RIGHT}" y2="{yy:.1f}" '
                         f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6,4"/>')
            parts.append(text(RIGHT + 6, yy - 2, label, 10, "start", f'fill="{color}"'))
            parts.append(text(RIGHT + 6, yy + 10, fmt_time(result[0]), 10, "start", f'fill="{color}"'))
    # Legend.
    lx = LEFT
    for wkey, label, color in WORKERS:
        n = notes.get(f"workers_{wkey}", "?")
        parts.append(f'<rect x="{lx}" y="{H - 34}" width="14" height="14" fill="{color}"/>')
        parts.append(text(lx + 20, H - 22, f"{label} ({n})", 12, "start"))
        lx += 200
    parts.append(text(lx, H - 22, "whisker: p99 · dotted green: issue 3 targets (2 µs parked, 5 µs busy)",
                      11, "start"))
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
