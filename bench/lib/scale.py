#!/usr/bin/env python3
"""Drivers for bench/scale.sh (issue #18): tenant creation at scale, keys, connects through
the gateway and direct, the /metrics cardinality check, and the fairness run.

Every subcommand writes machine-readable results (TSV or JSON) for scale.sh's report; none
of them decides a goal except `metrics`, which exits non-zero when the tenant labels exceed
top + 1.

  scale.py plan N                       -> TSV idx slug placement server (stdout)
  scale.py create TG PLAN OUT JOBS      -> TSV idx slug placement server key elapsed_ms wall_ms attempts error
  scale.py ab TG CFG_BIG CFG_FRESH N OUT.json
  scale.py keys TG SLUGS OUT JOBS       -> TSV slug secret
  scale.py connect CFG TENANTS KEYS PORT OUT.json [DIRECT_N] [GAP_S]
  scale.py http BASE_URL KEYS OUT.json
  scale.py metrics URL TOP OUT.json
  scale.py fairness CFG KEYS PORT OUT.json BUDGET
"""
import hashlib
import hmac
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request

TENANT_ROLE = re.compile(r"^t[0-9a-f]{12}(_ro)?$")


def pct(xs, p):
    """Nearest-rank percentile: the ceil(p/100 * n)-th smallest value."""
    xs = sorted(xs)
    if not xs:
        return None
    i = max(1, -(-len(xs) * p // 100))
    return xs[int(i) - 1]


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50": round(statistics.median(xs), 2), "p95": round(pct(xs, 95), 2),
            "p99": round(pct(xs, 99), 2), "max": round(max(xs), 2), "mean": round(statistics.fmean(xs), 2)}


# ---------------------------------------------------------------------------------------
# plan / create / keys

def cmd_plan(n):
    """N tenants, 95% pooled, 4.5% schema, 0.5% database, each placement's tenants spread
    evenly through the sequence (largest deficit first) and alternated over us-1 / eu-1."""
    n = int(n)
    share = {"pooled": 0.95, "schema": 0.045, "database": 0.005}
    count = {p: 0 for p in share}
    servers = ["us-1", "eu-1"]
    for i in range(n):
        p = max(share, key=lambda k: (share[k] * (i + 1) - count[k], -list(share).index(k)))
        server = servers[count[p] % 2]
        count[p] += 1
        print(f"{i + 1}\tscale-{i + 1:05d}\t{p}\t{server}")


def run_tg(tg, args, env=None):
    t0 = time.monotonic()
    r = subprocess.run([tg] + args, capture_output=True, text=True, env=env)
    return r, (time.monotonic() - t0) * 1000


def cmd_create(tg, plan_path, out_path, jobs):
    rows = [l.rstrip("\n").split("\t") for l in open(plan_path) if l.strip()]
    q = queue.Queue()
    for r in rows:
        q.put(r)
    results = {}
    lock = threading.Lock()
    done = [0]
    t_start = time.monotonic()

    def worker():
        while True:
            try:
                idx, slug, placement, server = q.get_nowait()
            except queue.Empty:
                return
            err = ""
            attempts = 0
            key, elapsed, wall = "", "", ""
            # A failed create is resumable: the same command again (README). Up to 3 tries;
            # every failure is kept in the row, so a retried create is never reported clean.
            while attempts < 3:
                attempts += 1
                started = time.monotonic() - t_start
                r, w = run_tg(tg, ["tenant", "create", slug, "--placement", placement, "--server", server, "--json"])
                if r.returncode == 0:
                    try:
                        j = json.loads(r.stdout)
                        key, elapsed, wall = j["tenant"]["key"], j["elapsed_ms"], round(w, 1)
                        break
                    except (ValueError, KeyError) as e:
                        err += f"[try {attempts}: unparsable output {e}] "
                else:
                    err += f"[try {attempts}: exit {r.returncode}: {r.stderr.strip()[:300]}] "
            with lock:
                results[int(idx)] = (idx, slug, placement, server, key, str(elapsed), str(wall), str(attempts),
                                     err.replace("\t", " ").replace("\n", " "), f"{started:.3f}")
                done[0] += 1
                if done[0] % 500 == 0:
                    print(f"  created {done[0]}/{len(rows)} in {time.monotonic() - t_start:.0f}s", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=worker) for _ in range(int(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.monotonic() - t_start
    with open(out_path, "w") as f:
        f.write("idx\tslug\tplacement\tserver\tkey\telapsed_ms\twall_ms\tattempts\terror\tstarted_s\n")
        for i in sorted(results):
            f.write("\t".join(results[i]) + "\n")
    print(f"{total:.1f}")


def cmd_ab(tg, cfg_big, cfg_fresh, n, out_path):
    """Flatness against a same-minutes baseline: N creates per placement, one at a time,
    alternating between the big deployment (CFG_BIG, after the bulk creation) and a fresh
    one (CFG_FRESH, no tenants), so machine noise falls on both alike."""
    res = {}
    for p in ("pooled", "schema", "database"):
        for i in range(1, int(n) + 1):
            for side, cfg in (("big", cfg_big), ("fresh", cfg_fresh)):
                env = dict(os.environ, TENANTGATE_CONFIG=cfg)
                server = "us-1" if i % 2 else "eu-1"
                r, w = run_tg(tg, ["tenant", "create", f"ab-{p}-{i:03d}", "--placement", p, "--server", server, "--json"], env)
                if r.returncode != 0:
                    sys.exit(f"create on {side} failed: {r.stderr.strip()[:300]}")
                res.setdefault(p, {}).setdefault(side, []).append(json.loads(r.stdout)["elapsed_ms"])
    out = {p: {side: {"n": len(v), "median": statistics.median(v), "p95": pct(v, 95)} for side, v in d.items()} for p, d in res.items()}
    for p, d in res.items():
        ratios = [b / f for b, f in zip(d["big"], d["fresh"])]
        out[p]["ratio_median"] = round(statistics.median(ratios), 3)
    json.dump(out, open(out_path, "w"), indent=1)


def cmd_keys(tg, slugs_path, out_path, jobs):
    slugs = [l.strip() for l in open(slugs_path) if l.strip()]
    q = queue.Queue()
    for s in slugs:
        q.put(s)
    out = {}
    errors = []
    lock = threading.Lock()

    def worker():
        while True:
            try:
                s = q.get_nowait()
            except queue.Empty:
                return
            r, _ = run_tg(tg, ["key", "create", s, "--name", "scale-bench", "--json"])
            with lock:
                if r.returncode == 0:
                    out[s] = json.loads(r.stdout)["secret"]
                else:
                    errors.append(f"{s}: {r.stderr.strip()[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(int(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"key create failed for {len(errors)} tenant(s), e.g. {errors[0]}")
    with open(out_path, "w") as f:
        for s in slugs:
            f.write(f"{s}\t{out[s]}\n")


# ---------------------------------------------------------------------------------------
# connects

def servers_of(cfg_path):
    cfg = tomllib.load(open(cfg_path, "rb"))
    out = {}
    for s in cfg.get("servers", []):
        u = urllib.parse.urlparse(s["url"])
        out[s["name"]] = {"host": u.hostname, "port": u.port, "user": urllib.parse.unquote(u.username),
                          "password": urllib.parse.unquote(u.password or "")}
    return out


def role_password(cfg_path, role):
    key = open(os.path.join(os.path.dirname(cfg_path), "master.key"), "rb").read().strip()
    return hmac.new(key, role.encode(), hashlib.sha256).hexdigest()


def timed_connect(conninfo, sql="SELECT 1", **kw):
    """ms from connect() to the result of `sql`; the connection is closed after timing."""
    import psycopg
    t0 = time.perf_counter()
    try:
        c = psycopg.connect(conninfo, autocommit=True, **kw)
        try:
            c.execute(sql).fetchall()
            ms = (time.perf_counter() - t0) * 1000
        finally:
            c.close()
        return ms, None
    except Exception as e:  # noqa: BLE001 (a refused connect is a result, kept with its message)
        return (time.perf_counter() - t0) * 1000, " ".join(str(e).split())[:400]


def gw_conninfo(port, slug, secret):
    return f"host=127.0.0.1 port={port} user={slug} password={secret} dbname=app sslmode=disable connect_timeout=30"


def load_tenants(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:] if r and r[0]]


def db_of(t):
    return {"pooled": "tg_pool", "schema": "tg_bridge", "database": t["key"]}[t["placement"]]


def cmd_connect(cfg_path, tenants_path, keys_path, port, out_path, direct_n="300", gap_s="0.05"):
    """For every tenant in KEYS (in order): a cold connect through the gateway (its first,
    no pooled backend), then after GAP_S a warm one (its backend just went back to its
    pool). Then DIRECT_N of them direct to PostgreSQL as the tenant's own role (baseline),
    twice each, alternated with a warm gateway connect of the same tenant (after one
    unmeasured connect that makes it warm), GAP_S between any two."""
    port = int(port)
    gap = float(gap_s)
    servers = servers_of(cfg_path)
    tenants = {t["slug"]: t for t in load_tenants(tenants_path)}
    keys = [l.rstrip("\n").split("\t") for l in open(keys_path) if l.strip()]
    cold, warm, errors = [], [], []
    by_placement = {}
    t_start = time.monotonic()
    for i, (slug, secret) in enumerate(keys):
        ms, err = timed_connect(gw_conninfo(port, slug, secret))
        if err:
            errors.append(f"cold {slug}: {err}")
        else:
            cold.append(ms)
            by_placement.setdefault(tenants[slug]["placement"], {"cold": [], "warm": []})["cold"].append(ms)
        time.sleep(gap)
        ms, err = timed_connect(gw_conninfo(port, slug, secret))
        if err:
            errors.append(f"warm {slug}: {err}")
        else:
            warm.append(ms)
            by_placement[tenants[slug]["placement"]]["warm"].append(ms)
        if (i + 1) % 500 == 0:
            print(f"  connected {i + 1}/{len(keys)} tenants in {time.monotonic() - t_start:.0f}s", file=sys.stderr, flush=True)
    # Baseline: direct to PostgreSQL as the tenant's read-write role, and the same tenant's
    # warm gateway connect alternated with it (same minute, same machine noise).
    direct, warm_pair = [], []
    for slug, secret in keys[: int(direct_n)]:
        t = tenants[slug]
        s = servers[t["server"]]
        conn = (f"host={s['host']} port={s['port']} user={t['key']} password={role_password(cfg_path, t['key'])} "
                f"dbname={db_of(t)} sslmode=disable connect_timeout=30")
        # Its backend was likely evicted since its first pass: one unmeasured gateway
        # connect makes it warm again.
        timed_connect(gw_conninfo(port, slug, secret))
        for _ in range(2):
            time.sleep(gap)
            ms, err = timed_connect(conn)
            (errors.append(f"direct {slug}: {err}") if err else direct.append(ms))
            time.sleep(gap)
            ms, err = timed_connect(gw_conninfo(port, slug, secret))
            (errors.append(f"warm-pair {slug}: {err}") if err else warm_pair.append(ms))
    res = {
        "tenants": len(keys), "gap_s": gap, "seconds": round(time.monotonic() - t_start, 1),
        "cold": summary(cold), "warm": summary(warm), "direct": summary(direct), "warm_paired": summary(warm_pair),
        "by_placement": {p: {"cold": summary(v["cold"]), "warm": summary(v["warm"])} for p, v in by_placement.items()},
        "errors": len(errors), "error_examples": errors[:5],
    }
    json.dump(res, open(out_path, "w"), indent=1)


def cmd_http(base, keys_path, out_path):
    """One `POST /v1/sql` SELECT 1 per tenant in KEYS, with its API key: so /metrics has
    HTTP series (tenantgate_http_requests_total, ...) for as many tenants as the wire did."""
    keys = [l.rstrip("\n").split("\t") for l in open(keys_path) if l.strip()]
    ms, status = [], {}
    for slug, secret in keys:
        req = urllib.request.Request(base + "/v1/sql", data=json.dumps({"sql": "SELECT 1"}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception as e:  # noqa: BLE001
            code = type(e).__name__
        ms.append((time.perf_counter() - t0) * 1000)
        status[str(code)] = status.get(str(code), 0) + 1
    json.dump({"requests": len(keys), "status": status, "latency": summary(ms)}, open(out_path, "w"), indent=1)
    if set(status) != {"200"}:
        sys.exit(f"/v1/sql answered {status}")


# ---------------------------------------------------------------------------------------
# /metrics

def cmd_metrics(url, top, out_path):
    """Scrape /metrics; per metric with a `tenant` label, the number of distinct values.
    Fails (exit 1) when any metric has more than TOP + 1, or when the per-tenant families
    are missing (nothing would have been shown)."""
    top = int(top)
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    labels = {}
    for line in text.splitlines():
        if line.startswith("#") or "tenant=\"" not in line:
            continue
        name = line.split("{", 1)[0]
        for base in ("_bucket", "_sum", "_count"):
            if name.endswith(base) and name.startswith("tenantgate_http_request_duration_seconds"):
                name = name[: -len(base)]
        v = re.search(r'[{,]tenant="([^"]*)"', line).group(1)
        labels.setdefault(name, set()).add(v)
    stmts = {}
    for line in text.splitlines():
        m = re.match(r'tenantgate_tenant_statements_total\{tenant="([^"]*)"\} (\S+)', line)
        if m:
            stmts[m.group(1)] = float(m.group(2))
    res = {
        "top": top, "bytes": len(text), "series_lines": sum(1 for l in text.splitlines() if l and not l.startswith("#")),
        "per_metric": {k: len(v) for k, v in sorted(labels.items())},
        "other_present": {k: "_other" in v for k, v in sorted(labels.items())},
        "statements_total": sum(stmts.values()), "statements_other": stmts.get("_other", 0),
        "pool": [l for l in text.splitlines() if l.startswith("tenantgate_pool_connections")],
    }
    json.dump(res, open(out_path, "w"), indent=1)
    bad = {k: n for k, n in res["per_metric"].items() if n > top + 1}
    if "tenantgate_tenant_statements_total" not in labels:
        sys.exit("/metrics has no tenantgate_tenant_statements_total series: the per-tenant metrics are missing")
    if bad:
        sys.exit(f"/metrics cardinality over top + 1 = {top + 1}: {bad}")


# ---------------------------------------------------------------------------------------
# fairness

def cmd_fairness(cfg_path, keys_path, port, out_path, budget, hog_tenants="5", newcomer_n="50", rounds="15", gap_s="0.2"):
    """Five hog tenants each open 3x their fair share (budget / 6) of sessions that loop on
    pg_sleep, and reconnect at once when refused. Then: the sixth tenant connects and runs
    SELECT 1, NEWCOMER_N times one after another (GAP_S apart); then tenants 7-10 connect
    together, ROUNDS times. A baseline of the sixth with no hogs runs first."""
    import psycopg
    port, budget, hogs_n = int(port), int(budget), int(hog_tenants)
    gap = float(gap_s)
    keys = [l.rstrip("\n").split("\t") for l in open(keys_path) if l.strip()]
    hogs, sixth, group = keys[:hogs_n], keys[hogs_n], keys[hogs_n + 1: hogs_n + 5]
    share = budget // (hogs_n + 1)
    per_hog = 3 * share
    servers = servers_of(cfg_path)
    adm = servers["us-1"]
    admin = f"host={adm['host']} port={adm['port']} user={adm['user']} password={adm['password']} dbname=postgres"

    def backends_by_role():
        with psycopg.connect(admin, autocommit=True) as c:
            rows = c.execute("SELECT usename, count(*) FROM pg_stat_activity WHERE usename ~ '^t[0-9a-f]{12}(_ro)?$' GROUP BY 1").fetchall()
        return {r[0]: r[1] for r in rows}

    def run_newcomer(n):
        out = []
        for _ in range(n):
            ms, err = timed_connect(gw_conninfo(port, *sixth))
            out.append((ms, err))
            time.sleep(gap)
        return out

    def run_group(n_rounds):
        out = []
        for _ in range(n_rounds):
            res = [None] * len(group)
            barrier = threading.Barrier(len(group))

            def one(i, slug, secret):
                barrier.wait()
                res[i] = timed_connect(gw_conninfo(port, slug, secret))

            ts = [threading.Thread(target=one, args=(i, s, k)) for i, (s, k) in enumerate(group)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            out.extend(res)
            time.sleep(gap)
        return out

    def stats(samples):
        ok = [ms for ms, err in samples if not err]
        errs = [err for _, err in samples if err]
        # A refused or failed connect counts at its full time in the percentiles: the
        # tenant did not get in within it.
        allv = [ms for ms, _ in samples]
        return {"n": len(samples), "ok": len(ok), "failed": len(errs), "all": summary(allv), "ok_only": summary(ok),
                "within_100ms": sum(1 for ms, err in samples if not err and ms <= 100), "error_examples": sorted(set(errs))[:3]}

    # Baseline: no hogs. The sixth's first connect is cold, the rest reuse its backend.
    base_newcomer = stats(run_newcomer(int(newcomer_n)))
    base_group = stats(run_group(max(3, int(rounds) // 3)))

    stop = threading.Event()
    hog_refusals = [0]
    hog_sessions = [0]
    lock = threading.Lock()

    def hog(slug, secret):
        while not stop.is_set():
            try:
                c = psycopg.connect(gw_conninfo(port, slug, secret), autocommit=True)
            except Exception:  # noqa: BLE001 (refused: 53300 after the checkout timeout; retry at once)
                with lock:
                    hog_refusals[0] += 1
                time.sleep(0.01)
                continue
            with lock:
                hog_sessions[0] += 1
            try:
                while not stop.is_set():
                    c.execute("SELECT pg_sleep(5)")
            except Exception:  # noqa: BLE001
                pass
            finally:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass

    threads = [threading.Thread(target=hog, args=(s, k), daemon=True) for s, k in hogs for _ in range(per_hog)]
    for t in threads:
        t.start()
    # Wait until the hogs hold the server (or 20 s).
    hog_roles = None
    t0 = time.monotonic()
    held = {}
    while time.monotonic() - t0 < 20:
        held = backends_by_role()
        if sum(held.values()) >= budget - 1:
            break
        time.sleep(0.5)
    time.sleep(2)
    held_before = backends_by_role()
    under_newcomer = stats(run_newcomer(int(newcomer_n)))
    held_mid = backends_by_role()
    under_group = stats(run_group(int(rounds)))
    held_after = backends_by_role()
    stop.set()
    res = {
        "budget": budget, "fair_share": share, "hog_tenants": hogs_n, "sessions_per_hog": per_hog,
        "hog_clients": len(threads), "gap_s": gap,
        "baseline": {"sixth": base_newcomer, "seventh_to_tenth": base_group},
        "under_load": {"sixth": under_newcomer, "seventh_to_tenth": under_group},
        "backends_on_us1": {"before": sum(held_before.values()), "during_sixth": sum(held_mid.values()), "after": sum(held_after.values()),
                            "per_role_before": sorted(held_before.values(), reverse=True)},
        "hog_sessions_opened": hog_sessions[0], "hog_refusals": hog_refusals[0],
    }
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"plan": cmd_plan, "create": cmd_create, "keys": cmd_keys, "connect": cmd_connect, "metrics": cmd_metrics,
     "fairness": cmd_fairness, "http": cmd_http, "ab": cmd_ab}[cmd](*args)
