#!/usr/bin/env bash
# HTTP API benchmark (issue 4): requests/s and p50/p99 latency of POST /v1/sql point reads
# at 1 and 32 concurrent clients (wrk, bench/wrk/sql_point_read.lua), compared in the same
# run with the same statement (bench/pgbench/point_read.sql, pgbench -M extended: Parse/
# Bind/Execute of the unnamed statement, as the HTTP API does) over the wire gateway and
# directly on PostgreSQL. Pooled tenant (pasta-palace), gate on, API-key auth.
#
# Each round runs the three paths back to back (HTTP, wire gateway, direct); the report
# gives the median over rounds. pgbench latencies come from its per-transaction log (-l).
#
# The report gives, per client count, the HTTP door's rate as a share of the wire gateway's
# (the ratio of each round, their geometric mean and 95% interval; goal ≥ 70% at 32 clients).
#
# Usage: bench/http.sh          (about 4 minutes with the defaults)
#   ROUNDS=3  DURATION=10  CLIENTS="1 32"  TG_BIN=path
#   TG_BIN_BASELINE=path  also serve this build (gate on) and measure its HTTP door as path
#                         http-base in each round, for a before/after comparison in one run
# Needs wrk (apt-get install wrk), pgbench, psql, python3, curl.
# Writes bench/results/http-<date>.md. Runs in $BENCH_DIR (default /tmp/tg-http-bench),
# removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-http-bench}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-"1 32"}
SLUG=pasta-palace
DP_TENANTS=$SLUG
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
dp_serve on true
if [ -n "${TG_BIN_BASELINE:-}" ]; then
  cp "$TG_BIN_BASELINE" "$BIN_DIR/tenantgate-baseline"
  TG_MAIN=$TG; TG="$BIN_DIR/tenantgate-baseline"
  # A build from before [reports] restore_benchmark (issue 20) refuses the demo's line for it.
  CFG_MAIN=$TENANTGATE_CONFIG; TENANTGATE_CONFIG="$BENCH_DIR/demo/tenantgate-baseline.toml"
  grep -v '^restore_benchmark' "$CFG_MAIN" > "$TENANTGATE_CONFIG"
  dp_serve base true
  TG=$TG_MAIN; TENANTGATE_CONFIG=$CFG_MAIN
fi
V=$(dp_var "$SLUG")
KEYV=KEY_$V; KEY=${!KEYV}
HTTP="http://127.0.0.1:$SERVE_HTTP_PORT_on"

# The request must succeed and return the row, or the benchmark measures errors.
check=$(curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$HTTP/v1/sql" \
  -d '{"sql": "SELECT order_id, status, table_no, total, placed_at FROM orders WHERE order_id = ('"'"'00000000-0000-4000-9000-'"'"' || lpad($1::text, 12, '"'"'0'"'"'))::uuid", "params": [42]}')
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["row_count"] == 1, d; print("HTTP check:", d["rows"][0][:2], file=sys.stderr)' "$check"

LOAD_START=$(dp_load)
T0=$(date +%s)
RAW="$BENCH_DIR/raw.tsv"
printf 'clients\tround\tpath\trps\tp50_ms\tp99_ms\tmean_ms\terrors\n' > "$RAW"

run_http() {  # CLIENTS ROUND [PATH URL]
  local c=$1 r=$2 path=${3:-http} url=${4:-$HTTP} t out line
  t=$(( c < 2 ? c : 2 ))
  out="$BENCH_DIR/wrk-$c-$r-$path.out"
  TG_KEY="$KEY" wrk -t "$t" -c "$c" -d "${DURATION}s" --latency -s bench/wrk/sql_point_read.lua "$url/v1/sql" > "$out" 2>&1 || true
  line=$(grep '^RESULT' "$out" || true)
  [ -n "$line" ] || { echo "wrk failed:" >&2; cat "$out" >&2; exit 1; }
  python3 - "$c" "$r" "$line" "$path" >> "$RAW" <<'PY'
import sys
c, r, line, path = sys.argv[1:5]
kv = dict(x.split("=") for x in line.split()[1:])
print("\t".join([c, r, path, kv["rps"], kv["p50_ms"], kv["p99_ms"], kv["mean_ms"], str(int(kv["non2xx"]) + int(kv["socket_errors"]))]))
PY
  tail -1 "$RAW" >&2
}

run_pgbench() {  # CLIENTS ROUND PATH
  local c=$1 r=$2 path=$3 host port user db pw j logdir out
  if [ "$path" = wire-gateway ]; then
    host=127.0.0.1; port=$SERVE_PG_PORT_on; user=$SLUG; db=app; pw=$KEY
  else
    host=DIRECT_HOST_$V; host=${!host}; port=DIRECT_PORT_$V; port=${!port}
    user=DIRECT_USER_$V; user=${!user}; db=DIRECT_DB_$V; db=${!db}; pw=DIRECT_PW_$V; pw=${!pw}
  fi
  j=$(( c < 2 ? c : 2 ))
  logdir="$BENCH_DIR/log-$c-$r-$path"; mkdir -p "$logdir"
  out="$logdir/pgbench.out"
  PGPASSWORD="$pw" pgbench -n -h "$host" -p "$port" -U "$user" -c "$c" -j "$j" -T "$DURATION" -M extended \
    -l --log-prefix="$logdir/tx" -f bench/pgbench/point_read.sql "$db" > "$out" 2>&1 || true
  grep -q '^tps = ' "$out" || { echo "pgbench failed on $path:" >&2; cat "$out" >&2; exit 1; }
  python3 - "$c" "$r" "$path" "$logdir" "$out" >> "$RAW" <<'PY'
import glob, re, statistics, sys
c, r, path, logdir, out = sys.argv[1:6]
text = open(out).read()
tps = float(re.search(r"^tps = ([0-9.]+)", text, re.M).group(1))
failed = re.search(r"^number of failed transactions: (\d+)", text, re.M)
lat = []
for f in glob.glob(f"{logdir}/tx*"):
    for line in open(f):
        p = line.split()
        if len(p) >= 3 and p[2].isdigit():
            lat.append(int(p[2]) / 1000.0)
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, max(0, int(round(q * len(lat))) - 1))]
print("\t".join([c, r, path, f"{tps:.1f}", f"{pick(0.50):.3f}", f"{pick(0.99):.3f}", f"{statistics.mean(lat):.3f}", failed.group(1) if failed else "0"]))
PY
  rm -f "$logdir"/tx*
  tail -1 "$RAW" >&2
}

for c in $CLIENTS; do
  for r in $(seq 1 "$ROUNDS"); do
    run_http "$c" "$r"
    [ -n "${TG_BIN_BASELINE:-}" ] && run_http "$c" "$r" http-base "http://127.0.0.1:$SERVE_HTTP_PORT_base"
    run_pgbench "$c" "$r" wire-gateway
    run_pgbench "$c" "$r" direct
  done
done
LOAD_END=$(dp_load)
ELAPSED=$(( $(date +%s) - T0 ))

mkdir -p bench/results
OUT="bench/results/http-$(date +%Y-%m-%d).md"
python3 - "$RAW" "$OUT" "$(dp_machine)" "$LOAD_START" "$LOAD_END" "$DURATION" "$ROUNDS" "$ELAPSED" "$(date -u +%Y-%m-%dT%H:%MZ)" "${TG_BIN_BASELINE:-}" <<'PY'
import csv, statistics, sys
sys.path.insert(0, "bench/lib")
from stats import geo_ci, against_goal
raw, out, machine, ls, le, duration, rounds, elapsed, when, baseline = sys.argv[1:11]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
if baseline:
    machine += f"; baseline (path http-base): {baseline}"
paths = [("http", "HTTP `POST /v1/sql` (wrk)"), ("http-base", "HTTP `POST /v1/sql`, baseline build (wrk)"), ("wire-gateway", "wire gateway (pgbench -M extended)"), ("direct", "PostgreSQL direct (pgbench -M extended)")]
md = [f"# Data plane: HTTP API benchmark (bench/http.sh), {when}", "",
      f"{rounds} rounds × {duration} s per path, paths back to back within a round; {int(elapsed) // 60} min {int(elapsed) % 60} s in all.", "",
      f"Machine: {machine}.", "", f"Concurrent load at start: {ls}", "", f"at end: {le}", "",
      "Pooled tenant pasta-palace, gate on, API key (`Authorization: Bearer tgk_…`), HTTP rate limit off. "
      "Same statement everywhere: `SELECT order_id, status, table_no, total, placed_at FROM orders WHERE order_id = "
      "('00000000-0000-4000-9000-' || lpad($1::text, 12, '0'))::uuid` with a random k in 1..10000 (one existing row). "
      "Figures are medians over rounds; requests/s for HTTP, TPS (= statements/s) for pgbench.", "",
      "| clients | path | requests/s | p50 ms | p99 ms | mean ms | errors | req/s vs direct | req/s vs wire gateway |",
      "|---|---|---|---|---|---|---|---|---|"]
clients = sorted({int(r["clients"]) for r in rows})
for c in clients:
    by = {p: [r for r in rows if int(r["clients"]) == c and r["path"] == p] for p, _ in paths}
    m = {p: {k: statistics.median(float(r[k]) for r in by[p]) for k in ["rps", "p50_ms", "p99_ms", "mean_ms"]} for p, _ in paths if by[p]}
    for p, label in paths:
        if p not in m:
            continue
        def rr(q):
            xs = [float(a["rps"]) / float(b["rps"]) for a, b in zip(by[p], by[q])]
            return f"{statistics.median(xs) * 100:.0f}%"
        errs = sum(int(r["errors"]) for r in by[p])
        md.append(f"| {c} | {label} | {m[p]['rps']:.0f} | {m[p]['p50_ms']:.3f} | {m[p]['p99_ms']:.3f} | {m[p]['mean_ms']:.3f} | {errs} | {rr('direct')} | {rr('wire-gateway')} |")
md += ["", "HTTP door's rate as a share of the wire gateway's, per round (goal ≥ 70% at 32 clients):", ""]
for c in clients:
    for p in ["http", "http-base"]:
        a = {r["round"]: float(r["rps"]) for r in rows if int(r["clients"]) == c and r["path"] == p}
        b = {r["round"]: float(r["rps"]) for r in rows if int(r["clients"]) == c and r["path"] == "wire-gateway"}
        xs = [a[k] / b[k] for k in sorted(a) if k in b]
        if not xs:
            continue
        ci = geo_ci(xs)
        ci_s = f"{ci[0] * 100:.0f}–{ci[1] * 100:.0f}%" if ci else "n/a"
        md.append(f"- {c} clients, {p}: **{statistics.geometric_mean(xs) * 100:.0f}%** ({', '.join(f'{x * 100:.0f}%' for x in xs)}; 95% interval {ci_s})"
                  + (f"; goal ≥ 70%: {against_goal(ci, 0.7)}" if c == 32 else ""))
md += ["", "## Raw runs", "", "| clients | round | path | req/s | p50 ms | p99 ms | mean ms | errors |", "|---|---|---|---|---|---|---|---|"]
for r in rows:
    md.append("| " + " | ".join(r[k] for k in ["clients", "round", "path", "rps", "p50_ms", "p99_ms", "mean_ms", "errors"]) + " |")
open(out, "w").write("\n".join(md) + "\n")
PY
cp "$RAW" "${OUT%.md}.tsv"
cat "$OUT"
