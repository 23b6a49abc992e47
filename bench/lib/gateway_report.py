#!/usr/bin/env python3
"""Format bench/gateway.sh's raw TSV (one row per pgbench run) as bench/results/gateway-<date>.md.

Per (tenant, protocol, script, clients) cell: the median TPS of each path over the rounds,
and the median over rounds of the per-round ratios (gate on / X), which is what the goal is
judged on: one disturbed run moves it much less than a ratio of medians.
"""
import csv
import statistics
import os
import sys
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import geo_ci  # noqa: E402

raw, out_path, machine, load_start, load_end, duration, rounds, elapsed, when = sys.argv[1:10]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
PATHS = ["gate-on", "gate-on-base", "gate-on-mt", "gate-off", "pgbouncer-session", "pgbouncer-transaction", "direct"]
LABEL = {
    "gate-on": "tenantgate gate on",
    "gate-on-base": "gate on, baseline build",
    "gate-on-mt": "gate on, thread per CPU",
    "gate-off": "tenantgate gate off",
    "pgbouncer-session": "PgBouncer session",
    "pgbouncer-transaction": "PgBouncer txn",
    "direct": "PG direct",
}
PLACEMENT = {"pasta-palace": "pooled placement (RLS on shared tables), us-1", "brasserie-berlin": "database placement, eu-1"}


def tps(r):
    return int(r["tps"]) if r and r["tps"] and int(r["tps"]) > 0 and not r["error"] else None


# (tenant, mode, script) -> clients -> round -> path -> tps
cells = OrderedDict()
cpu = {}  # (tenant, mode, script, clients, path) -> [proxy CPU µs per transaction]
for r in rows:
    cells.setdefault((r["tenant"], r["mode"], r["script"]), OrderedDict()).setdefault(int(r["clients"]), OrderedDict()) \
        .setdefault(r["round"], {})[r["path"]] = tps(r)
    if r.get("proxy_cpu_us_per_tx"):
        cpu.setdefault((r["tenant"], r["mode"], r["script"], int(r["clients"]), r["path"]), []).append(int(r["proxy_cpu_us_per_tx"]))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(by_round, a, b):
    """Median over rounds of a/b, as a percentage string."""
    rs = [d[a] / d[b] for d in by_round.values() if d.get(a) and d.get(b)]
    return (f"{statistics.median(rs) * 100:.0f}%", statistics.median(rs)) if rs else ("–", None)


def ratio_ci(by_round, a, b):
    """95% confidence interval of the geometric mean of the per-round ratios a/b, or None
    with fewer than 3 rounds."""
    return geo_ci([d[a] / d[b] for d in by_round.values() if d.get(a) and d.get(b)])


goal_cells, goal_met, misses = 0, 0, []
md = []
for (tenant, mode, script), by_c in cells.items():
    md.append(f"### {script}, -M {mode}, {tenant} ({PLACEMENT.get(tenant, tenant)})")
    md.append("")
    present = [p for p in PATHS if any(p in d for by_r in by_c.values() for d in by_r.values())]
    pgb = [p for p in present if p.startswith("pgbouncer")]
    proxies = [p for p in present if p != "direct"]
    head = ["clients"] + [LABEL[p] + " TPS" for p in present] + ["on/direct", "off/direct", "on/off"] + (["on/baseline build [95%]"] if "gate-on-base" in present else []) + [f"on/{LABEL[p]}" for p in pgb] + ["goal: on ≥ PgBouncer"]
    if cpu:
        head += ["proxy CPU µs/tx: " + " / ".join(LABEL[p] for p in proxies)]
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "---|" * len(head))
    for c, by_r in by_c.items():
        medians = {p: med([d.get(p) for d in by_r.values()]) for p in present}
        cols = [str(c)] + [f"{medians[p]:.0f}" if medians[p] is not None else "error" for p in present]
        cols += [ratio(by_r, "gate-on", "direct")[0], ratio(by_r, "gate-off", "direct")[0], ratio(by_r, "gate-on", "gate-off")[0]]
        if "gate-on-base" in present:
            ci = ratio_ci(by_r, "gate-on", "gate-on-base")
            cols.append(ratio(by_r, "gate-on", "gate-on-base")[0] + (f" [{ci[0] * 100:.0f}–{ci[1] * 100:.0f}]" if ci else ""))
        vs = []
        for p in pgb:
            s, v = ratio(by_r, "gate-on", p)
            ci = ratio_ci(by_r, "gate-on", p)
            cols.append(s + (f" [{ci[0] * 100:.0f}–{ci[1] * 100:.0f}]" if ci else ""))
            if v is not None:
                vs.append((v, p, ci))
        if vs:
            goal_cells += 1
            worst, wp, wci = min(vs, key=lambda x: x[0])
            worst = round(worst, 2)
            # "Within noise": below 100% by the median, but the 95% interval reaches 100% (or,
            # with too few rounds for one, within 3%).
            noise = wci[1] >= 1.0 if wci else worst >= 0.97
            if worst >= 1.0:
                goal_met += 1
                cols.append("met")
            elif noise:
                cols.append(f"within noise ({worst * 100:.0f}% of {LABEL[wp]})")
                misses.append(f"{script} -M {mode} {tenant} c={c}: {worst * 100:.0f}% of {LABEL[wp]}")
            else:
                cols.append(f"**missed** ({worst * 100:.0f}% of {LABEL[wp]})")
                misses.append(f"{script} -M {mode} {tenant} c={c}: {worst * 100:.0f}% of {LABEL[wp]}")
        else:
            cols.append("–")
        if cpu:
            cols.append(" / ".join(f"{med(cpu.get((tenant, mode, script, c, p), [None])) or 0:.0f}" for p in proxies))
        md.append("| " + " | ".join(cols) + " |")
    md.append("")

errors = [r for r in rows if r["error"] or r["failed"] not in ("0", "")]
raw_md = ["| tenant | -M | script | clients | round | path | TPS | latency avg ms | failed txns | proxy CPU µs/tx | error |", "|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    raw_md.append("| " + " | ".join((r.get(k) or "").replace("|", "/") for k in ["tenant", "mode", "script", "clients", "round", "path", "tps", "lat_ms", "failed", "proxy_cpu_us_per_tx", "error"]) + " |")

with open(out_path, "w") as f:
    f.write(f"# Data plane: wire gateway benchmark (bench/gateway.sh), {when}\n\n")
    warmup = os.environ.get("WARMUP", "0")
    f.write(f"{rounds} rounds × {duration} s per path and cell, paths back to back within a round, their order rotated by one each round; each run preceded by {warmup} s of unmeasured warm-up with the same clients; {int(elapsed) // 60} min {int(elapsed) % 60} s in all.\n\n")
    f.write(f"Machine: {machine}.\n\n")
    f.write(f"Concurrent load at start: {load_start}\n\nat end: {load_end}\n\n")
    f.write("TPS columns are the median over rounds; ratio columns are the median of the per-round ratios "
            "(on = tenantgate gate on, off = gate off, both with the run's worker_threads; \"thread per CPU\" is gate on with "
            "tenantgate's default of one runtime thread per CPU). Goal (issue 3): gate on ≥ PgBouncer, judged against "
            "each PgBouncer mode of the cell by the median of the per-round ratios; in brackets the 95% confidence "
            "interval of their geometric mean (t interval on the logarithms); \"within noise\": the median is below 100% "
            "but the interval reaches 100% (with fewer than 3 rounds: the median is at 97% or more)."
            + (" Proxy CPU µs/tx: CPU time (user + system, all threads) the tenantgate or PgBouncer process used during the run, "
               "divided by the transactions pgbench completed; median over rounds. It does not depend on how the 2 cores were "
               "shared, so it is the steadier measure of a proxy's cost." if cpu else "") + "\n\n")
    f.write(f"**Goal met in {goal_met} of {goal_cells} cells.**" + (" Not met: " + "; ".join(misses) + "." if misses else "") + "\n\n")
    if errors:
        f.write(f"Runs with errors or failed transactions: {len(errors)} (see the raw table).\n\n")
    f.write("\n".join(md) + "\n")
    f.write("## Raw pgbench runs\n\n" + "\n".join(raw_md) + "\n")
