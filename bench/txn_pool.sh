#!/usr/bin/env bash
# Transaction pooling benchmark (issue 19): many clients of one tenant over a pool of
# POOL backends, pgbench through `tenantgate serve` with the gate on and pool_mode =
# "transaction", against PgBouncer in transaction mode with the same pool size, for the same
# tenant role and database, in the same run (rounds alternate which path goes first).
#
# pgbench -M extended (unnamed statements): PgBouncer 1.18 cannot carry named prepared
# statements in transaction mode, so -M prepared would not be a comparison; it runs with
# -j 2 (two threads for all clients), which -M prepared would not allow (see the decision
# record on transaction pooling). The goal: the gate's TPS ≥ 90% of PgBouncer's.
#
# Usage: bench/txn_pool.sh      (about 2 minutes with the defaults)
#   ROUNDS=3  DURATION=10  CLIENTS=500  POOL=10  SCRIPT=select_only  TG_BIN=path
# Needs pgbouncer (apt-get install pgbouncer), pgbench, psql, python3.
# Writes bench/results/txn_pool-<date>.md. Runs in $BENCH_DIR (default /tmp/tg-txn-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-txn-bench}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-500}
POOL=${POOL:-10}
SCRIPT=${SCRIPT:-select_only}
SLUG=pasta-palace
DP_TENANTS=$SLUG
command -v pgbouncer >/dev/null || { echo "pgbouncer is missing: apt-get install -y pgbouncer" >&2; exit 1; }
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
V=$(dp_var "$SLUG")
KEYV=KEY_$V; KEY=${!KEYV}
DP_POOL_MAX=$POOL DP_GATEWAY_EXTRA='pool_mode = "transaction"' dp_serve txn true
DP_PGB_POOL=$POOL DP_PGB_MAX_CLIENTS=$(( CLIENTS + 20 )) dp_pgbouncer txn transaction "$SLUG"
LOAD_START=$(dp_load)
T0=$(date +%s)
RAW="$BENCH_DIR/raw.tsv"
printf 'round\tpath\ttps\tlat_ms\tfailed\tbackends\n' > "$RAW"

run_one() {  # ROUND PATH
  local r=$1 path=$2 port user pw out host db
  host=DIRECT_HOST_$V; db=DIRECT_DB_$V
  if [ "$path" = gate ]; then port=$SERVE_PG_PORT_txn; user=$SLUG; pw=$KEY; db=app
  else port=$PGB_PORT_txn; user=DIRECT_USER_$V; user=${!user}; pw=DIRECT_PW_$V; pw=${!pw}; db=${!db}; fi
  out="$BENCH_DIR/pgbench-$r-$path.out"
  PGPASSWORD="$pw" pgbench -n -h 127.0.0.1 -p "$port" -U "$user" -c "$CLIENTS" -j 2 -T "$DURATION" -M extended \
    -f "bench/pgbench/$SCRIPT.sql" "$db" > "$out" 2>&1 || true
  grep -q '^tps = ' "$out" || { echo "pgbench failed on $path:" >&2; tail -20 "$out" >&2; exit 1; }
  # Backends the tenant role holds on its server right after the run (the pool's ceiling).
  local admin role n
  role=DIRECT_USER_$V; role=${!role}
  admin=$(dp_admin_url "${!DIRECT_PORT_VAR}" postgres)
  n=$(psql -X -At "$admin" -c "SELECT count(*) FROM pg_stat_activity WHERE usename = '$role'")
  python3 - "$r" "$path" "$out" "$n" >> "$RAW" <<'PY'
import re, sys
r, path, out, n = sys.argv[1:5]
t = open(out).read()
tps = float(re.search(r"^tps = ([0-9.]+)", t, re.M).group(1))
lat = re.search(r"^latency average = ([0-9.]+) ms", t, re.M)
failed = re.search(r"^number of failed transactions: (\d+)", t, re.M)
aborted = len(re.findall(r"aborted in command", t))
print("\t".join([r, path, f"{tps:.1f}", lat.group(1) if lat else "", str(int(failed.group(1)) if failed else 0) + (f"+{aborted} aborted" if aborted else ""), n]))
PY
  tail -1 "$RAW" >&2
}
DIRECT_PORT_VAR=DIRECT_PORT_$V

for r in $(seq 1 "$ROUNDS"); do
  if [ $(( r % 2 )) -eq 1 ]; then order="gate pgbouncer"; else order="pgbouncer gate"; fi
  for p in $order; do run_one "$r" "$p"; sleep 1; done
done
LOAD_END=$(dp_load)
ELAPSED=$(( $(date +%s) - T0 ))

mkdir -p bench/results
OUT="bench/results/txn_pool-$(date +%Y-%m-%d).md"
python3 - "$RAW" "$OUT" "$(dp_machine)" "$LOAD_START" "$LOAD_END" "$DURATION" "$ROUNDS" "$ELAPSED" "$(date -u +%Y-%m-%dT%H:%MZ)" "$CLIENTS" "$POOL" "$SCRIPT" <<'PY'
import csv, statistics, sys
sys.path.insert(0, "bench/lib")
from stats import geo_ci, against_goal
raw, out, machine, ls, le, duration, rounds, elapsed, when, clients, pool, script = sys.argv[1:13]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
by = {p: {r["round"]: r for r in rows if r["path"] == p} for p in ["gate", "pgbouncer"]}
ratios = [float(by["gate"][k]["tps"]) / float(by["pgbouncer"][k]["tps"]) for k in sorted(by["gate"]) if k in by["pgbouncer"]]
ci = geo_ci(ratios)
gm = statistics.geometric_mean(ratios)
md = [f"# Transaction pooling benchmark (bench/txn_pool.sh), {when}", "",
      f"{rounds} rounds × {duration} s per path, the order alternating by round; {int(elapsed) // 60} min {int(elapsed) % 60} s in all.", "",
      f"Machine: {machine}.", "", f"Concurrent load at start: {ls}", "", f"at end: {le}", "",
      f"Pooled tenant pasta-palace, {clients} pgbench clients (-j 2, -M extended, bench/pgbench/{script}.sql) over {pool} backends: "
      f"`tenantgate serve` with the gate on, pool_mode = \"transaction\", pool_max_per_tenant = {pool}; PgBouncer in transaction mode, "
      f"default_pool_size = max_db_connections = {pool}, the tenant's own role. Backends = the role's sessions on the server just after the run.", "",
      "| path | TPS (median) | mean latency ms (median) | failed | backends |", "|---|---|---|---|---|"]
for p, label in [("gate", "tenantgate, transaction mode, gate on"), ("pgbouncer", "PgBouncer, transaction mode")]:
    rs = list(by[p].values())
    md.append(f"| {label} | {statistics.median(float(r['tps']) for r in rs):.0f} | {statistics.median(float(r['lat_ms']) for r in rs if r['lat_ms']):.1f} | {', '.join(r['failed'] for r in rs)} | {', '.join(r['backends'] for r in rs)} |")
ci_s = f"{ci[0] * 100:.0f}–{ci[1] * 100:.0f}%" if ci else "n/a"
md += ["", f"**Ratio tenantgate / PgBouncer: {gm * 100:.0f}%** (geometric mean of the per-round ratios {', '.join(f'{x * 100:.0f}%' for x in ratios)}; 95% interval {ci_s}). "
       f"Goal ≥ 90%: {against_goal(ci, 0.9)}.", "", "## Raw runs", "", "| round | path | TPS | mean latency ms | failed | backends |", "|---|---|---|---|---|---|"]
for r in rows:
    md.append("| " + " | ".join(r[k] for k in ["round", "path", "tps", "lat_ms", "failed", "backends"]) + " |")
open(out, "w").write("\n".join(md) + "\n")
PY
cp "$RAW" "${OUT%.md}.tsv"
cat "$OUT"
