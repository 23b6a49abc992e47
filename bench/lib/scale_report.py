#!/usr/bin/env python3
"""Format bench/scale.sh's raw results (a directory of TSV/JSON) as bench/results/scale-*.md."""
import csv
import json
import os
import statistics
import sys

(raw, out_path, machine, load_start, load_end, started, only, scale_n, create_jobs, top, fair_checkout_ms,
 idle_wait) = sys.argv[1:13]


def path(name):
    return os.path.join(raw, name)


def have(name):
    return os.path.exists(path(name))


def pct(xs, p):
    xs = sorted(xs)
    i = max(1, -(-len(xs) * p // 100))
    return xs[int(i) - 1]


def f(x, d=1):
    return "–" if x is None else f"{x:,.{d}f}"


def row(*c):
    return "| " + " | ".join(str(x) for x in c) + " |"


def verdict(ok):
    return "pass" if ok else "**FAIL**"


lines = []
w = lines.append
w(f"# Scale benchmark (issue #18), {started}" + ("" if only == "all" else f" — `--only {only}`"))
w("")
w(f"Machine: {machine.replace('; ;', ';')}. The demo's clusters archive WAL with pgBackRest (its default). Load at start: {load_start}. At end: {load_end}.")
w("")
w("The machine is shared and noisy: other engineers' builds and tests may run beside this benchmark "
  "(the load averages above are the only record of it), and clients, gateway and both PostgreSQL "
  "clusters share its 2 cores. Read ratios within this run, not absolute numbers across runs.")
w("")

# ---- creation
if have("create.tsv"):
    rows = list(csv.DictReader(open(path("create.tsv")), delimiter="\t"))
    total_s = float(open(path("create_seconds")).read())
    retried = [r for r in rows if int(r["attempts"]) > 1]
    w(f"## Tenant creation: {len(rows):,} tenants on us-1 and eu-1")
    w("")
    w(f"`tenant create --json`, one CLI process per tenant, **{create_jobs} at a time** (two workers taking the next "
      f"tenant of one sequence). Placements are interleaved evenly through the sequence and alternated over the two servers. "
      f"Server-side is `elapsed_ms` from the CLI's JSON; CLI wall adds process start, config and catalog connection. "
      f"All {len(rows):,} took **{total_s:,.0f} s: {len(rows) / total_s:,.1f} tenants/s** overall.")
    w("")
    w("| placement | tenants (us-1 / eu-1) | server-side p50 ms | p95 ms | CLI wall p50 ms | p95 ms | tenants/s (2 workers) | first-k median ms | last-k median ms | last / first |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for p in ["pooled", "schema", "database", "all"]:
        rs = rows if p == "all" else [r for r in rows if r["placement"] == p]
        if not rs:
            continue
        el = [float(r["elapsed_ms"]) for r in rs]
        wall = [float(r["wall_ms"]) for r in rs]
        k = min(1000, max(1, len(rs) // 4))
        first, last = statistics.median(el[:k]), statistics.median(el[-k:])
        us = sum(1 for r in rs if r["server"] == "us-1")
        rate = int(create_jobs) * len(rs) / (sum(wall) / 1000)
        w(row(p, f"{len(rs):,} ({us:,} / {len(rs) - us:,})", f(statistics.median(el)), f(pct(el, 95)), f(statistics.median(wall)),
              f(pct(wall, 95)), f(rate), f"{f(first)} (k={k:,})", f(last), f"{last / first:.2f}"))
    w("")
    w("tenants/s per placement is the rate two workers would sustain creating only that placement (2 / mean CLI wall time); "
      "first-k / last-k are the medians of the server-side time of that placement's first and last k creates "
      "(k = 1,000, or a quarter of the placement's creates when fewer).")
    if retried:
        w("")
        w(f"{len(retried)} create(s) needed a second try (the first failed; the rerun resumed it), e.g. `{retried[0]['error'][:300]}`.")
    # Flatness over the whole sequence, in tenths.
    n = len(rows)
    if n >= 10:
        w("")
        w("Server-side median per tenth of the sequence (all placements, ms): " + ", ".join(
            f(statistics.median([float(r["elapsed_ms"]) for r in rows[i * n // 10:(i + 1) * n // 10]])) for i in range(10)) + ".")
    if have("ab.json"):
        ab = json.load(open(path("ab.json")))
        w("")
        w(f"**Flat, against a same-minutes baseline:** after the {len(rows):,}, {ab['pooled']['big']['n']} more creates per placement, one at a time, "
          "alternating between this deployment and a fresh demo deployment with no tenants (two more clusters on the same machine), "
          "so the machine's noise falls on both alike:")
        w("")
        w("| placement | with the tenants above: median ms (p95) | fresh deployment: median ms (p95) | median of per-pair ratios |")
        w("|---|---|---|---|")
        for p in ("pooled", "schema", "database"):
            d = ab[p]
            w(row(p, f"{f(d['big']['median'])} ({f(d['big']['p95'])})", f"{f(d['fresh']['median'])} ({f(d['fresh']['p95'])})", f"{d['ratio_median']:.2f}×"))
    if have("roles.txt"):
        w("")
        w("Tenant roles and databases at the end: " + "; ".join(
            f"{s}: {int(r):,} tenant roles, {int(d)} tenant databases" for s, r, d in (l.split() for l in open(path("roles.txt")))) + ".")
    w("")

# ---- migrate
if have("migrate.json"):
    m = json.load(open(path("migrate.json")))
    noop = statistics.median(m["noop_runs"])
    w(f"## `tenantgate migrate` over {m['targets']:,} targets (`--jobs {m['jobs']}`)")
    w("")
    w("Targets: the two servers' pools (`tg_pool`), every schema tenant and every database tenant.")
    w("")
    w("| run | seconds | targets migrated |")
    w("|---|---|---|")
    w(row(f"nothing pending (median of 3: {', '.join(f'{x:.2f}' for x in m['noop_runs'])})", f"{noop:.2f}", 0))
    w(row("one `ALTER TABLE orders ADD COLUMN` pending", f"{m['pending']:.2f}", f"{m['pending_migrated']:,}"))
    w("")
    w(f"After the second run all {m['targets']:,} targets were at the latest version with no error.")
    w("")

# ---- list
if have("list-text.txt"):
    w("## `tenantgate tenant list`")
    w("")
    w("| command | median ms (3 runs) | runs ms | lines | bytes |")
    w("|---|---|---|---|---|")
    for fmt, cmd in [("text", "tenant list"), ("json", "tenant list --json")]:
        rs = [l.split() for l in open(path(f"list-{fmt}.txt"))]
        ms = [int(r[0]) for r in rs]
        w(row(f"`{cmd}`", statistics.median(ms), ", ".join(map(str, ms)), f"{int(rs[0][1]):,}", f"{int(rs[0][2]):,}"))
    w("")

# ---- gateway
if have("connect.json"):
    c = json.load(open(path("connect.json")))
    g = json.load(open(path("gateway.json")))
    w(f"## Gateway: {c['tenants']:,} distinct tenants through the wire port")
    w("")
    w("`tenantgate serve` with the product's `[gateway]` defaults (server_budget 80 per server, pool_max_per_tenant 20, "
      "pool_idle_timeout_ms 60,000, session pooling, gate on), a Python psycopg 3 client (libpq) on the same machine. "
      "Each sample is connect (SCRAM with the tenant's API key, `user` = slug) + `SELECT 1`, until the result is read. "
      f"Per tenant, in sequence: a **cold** connect (its first: the gateway has neither its route nor a backend), then "
      f"{c['gap_s'] * 1000:.0f} ms later a **warm** one (its backend was just returned to its pool). With "
      f"{c['tenants']:,} tenants over a budget of 80 per server, a cold connect usually evicts another tenant's idle backend. "
      "Direct: the same tenants' connects straight to PostgreSQL as their own read-write role (SCRAM, derived password), "
      "alternated with a warm gateway connect of the same tenant (*warm, paired*; after one unmeasured gateway connect that makes it warm again), "
      f"twice each, {c['gap_s'] * 1000:.0f} ms apart.")
    w("")
    w("| connect + SELECT 1 | n | p50 ms | p95 ms | p99 ms | max ms |")
    w("|---|---|---|---|---|---|")
    for k, label in [("cold", "gateway, cold"), ("warm", "gateway, warm"), ("warm_paired", "gateway, warm, paired with direct"), ("direct", "PostgreSQL direct")]:
        s = c[k]
        if s["n"]:
            w(row(label, f"{s['n']:,}", f(s["p50"], 2), f(s["p95"], 2), f(s["p99"], 2), f(s["max"], 2)))
    for p, v in sorted(c["by_placement"].items()):
        for k in ("cold", "warm"):
            s = v[k]
            if s["n"]:
                w(row(f"gateway, {k}, {p} only", f"{s['n']:,}", f(s["p50"], 2), f(s["p95"], 2), f(s["p99"], 2), f(s["max"], 2)))
    w("")
    if c["cold"]["n"] and c["warm"]["n"] and c["direct"]["n"]:
        w(f"Ratios (p50): cold / warm **{c['cold']['p50'] / c['warm']['p50']:.2f}×**; warm (paired) / direct "
          f"**{c['warm_paired']['p50'] / c['direct']['p50']:.2f}×**; cold / direct {c['cold']['p50'] / c['direct']['p50']:.2f}×. "
          f"p99: cold / warm {c['cold']['p99'] / c['warm']['p99']:.2f}×, warm (paired) / direct {c['warm_paired']['p99'] / c['direct']['p99']:.2f}×.")
        w("")
    if c["errors"]:
        w(f"**{c['errors']} connect(s) failed**, e.g.: " + "; ".join(f"`{e}`" for e in c["error_examples"]))
        w("")
    mb = lambda kb: f"{kb / 1024:.1f} MiB"  # noqa: E731
    w("| gateway RSS / tenant backends | value |")
    w("|---|---|")
    w(row("RSS after start (no connection yet)", mb(g["rss_start"])))
    w(row(f"RSS after the {c['tenants']:,} tenants' wire connects (peak RSS so far)", f"{mb(g['rss_after'])} ({mb(g['hwm_after'])})"))
    if "rss_http" in g:
        w(row(f"RSS after one `/v1/sql` request per tenant as well ({c['tenants']:,})", mb(g["rss_http"])))
    w(row(f"RSS after {idle_wait} s idle (peak)", f"{mb(g['rss_idle'])} ({mb(g['hwm_idle'])})"))
    w(row("tenant backends in pg_stat_activity just after the clients left: us-1 / eu-1", f"{g['be_us_after']} / {g['be_eu_after']}"))
    w(row(f"… after {idle_wait} s idle (pool_idle_timeout_ms 60,000): us-1 / eu-1", f"{g['be_us_idle']} / {g['be_eu_idle']}"))
    w("")
    if have("metrics.json"):
        m = json.load(open(path("metrics.json")))
        limit = int(top) + 1
        worst = max(m["per_metric"].values()) if m["per_metric"] else 0
        w(f"### /metrics cardinality after {c['tenants']:,} distinct tenants ran statements")
        w("")
        if have("http.json"):
            h = json.load(open(path("http.json")))
            w(f"Each of the {c['tenants']:,} tenants ran `SELECT 1` through the wire port (above, twice) and once through "
              f"`POST /v1/sql` with its API key ({h['requests']:,} requests, statuses {h['status']}, p50 {h['latency']['p50']} ms, "
              f"p99 {h['latency']['p99']} ms), so both the per-tenant usage metrics and the HTTP door's request metrics saw them all.")
            w("")
        w(f"`[http.metrics] top_tenants = {top}`: every metric with a `tenant` label must have at most {limit} values "
          f"(top {top} + `_other`). Scrape: {m['bytes']:,} bytes, {m['series_lines']:,} series. Statements counted: "
          f"{m['statements_total']:,.0f}, of which {m['statements_other']:,.0f} under `_other`.")
        w("")
        w("| metric | distinct tenant labels | `_other` present |")
        w("|---|---|---|")
        for k, n in m["per_metric"].items():
            w(row(f"`{k}`", n, "yes" if m["other_present"][k] else "no"))
        w("")
        w(f"Largest: {worst} ≤ {limit}: {verdict(worst <= limit and g['metrics_rc'] == 0)}.")
        if m.get("pool"):
            w("")
            w("The gateway's own pool gauges in the same scrape: " + ", ".join(f"`{l}`" for l in m["pool"]) + ".")
        w("")

# ---- fairness
if have("fairness.json"):
    fr = json.load(open(path("fairness.json")))
    w("## Fairness: a newcomer on a server that five tenants over-subscribe")
    w("")
    b = fr["backends_on_us1"]
    w(f"A second gateway with `server_budget = {fr['budget']}` and `checkout_timeout_ms = {fair_checkout_ms}` (otherwise defaults: "
      f"pool_max_per_tenant 20, server_reserve 4, session pooling); ten pooled tenants on us-1 (`fair-01`…`fair-10`). "
      f"Fair share = budget / 6 = {fr['fair_share']}. Five tenants each run {fr['sessions_per_hog']} clients (3× the share; "
      f"{fr['hog_clients']} in all) that hold a session looping on `SELECT pg_sleep(5)` and reconnect at once when refused. "
      f"Tenant backends on us-1 while they ran: {b['before']} before the newcomer, {b['during_sixth']} after it, {b['after']} at the end "
      f"(per hog role at the start: {', '.join(map(str, b['per_role_before']))}). Hog sessions opened: {fr['hog_sessions_opened']}; "
      f"hog connects refused: {fr['hog_refusals']}.")
    w("")
    w(f"Then the sixth tenant connects and runs `SELECT 1`, {fr['under_load']['sixth']['n']} times one after another "
      f"({fr['gap_s'] * 1000:.0f} ms apart, closing each time); then tenants 7–10 connect together (a barrier), "
      f"{fr['under_load']['seventh_to_tenth']['n'] // 4} rounds. A refused connect counts at the time it took to be refused. "
      "Baseline: the same with no hogs, same gateway, same run.")
    w("")
    w("| who | hogs | connects | ok | refused | within 100 ms | p50 ms | p99 ms | max ms | goal p99 ≤ 100 ms |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for phase, label in [("baseline", "none"), ("under_load", "5 × 3 shares")]:
        for who, wl in [("sixth", "6th tenant alone"), ("seventh_to_tenth", "7th–10th together")]:
            s = fr[phase][who]
            a = s["all"]
            goal = verdict(a["p99"] <= 100 and s["failed"] == 0) if phase == "under_load" else ""
            w(row(wl, label, s["n"], s["ok"], s["failed"], s["within_100ms"], f(a["p50"], 2), f(a["p99"], 2), f(a["max"], 2), goal))
    w("")
    for phase in ("under_load", "baseline"):
        for who in ("sixth", "seventh_to_tenth"):
            ex = fr[phase][who]["error_examples"]
            if ex:
                w(f"Refusals ({phase.replace('_', ' ')}, {who.replace('_', ' ')}): " + "; ".join(f"`{e}`" for e in ex))
                w("")
    w("Re-run this section alone with `bench/scale.sh --only fairness` (about two minutes).")
    w("")

open(out_path, "w").write("\n".join(lines))
