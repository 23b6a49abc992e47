#!/usr/bin/env bash
# Noisy-neighbour benchmark (issue 19): the p99 latency of one tenant's point reads
# (pasta-palace, LIGHT_CLIENTS pgbench clients, -M extended, bench/pgbench/point_read.sql)
# while another tenant (brasserie-berlin) runs HEAVY_CLIENTS clients of a CPU-heavy
# statement (bench/pgbench/heavy.sql), both through one `tenantgate serve` (gate on):
#   quiet   the light tenant alone
#   heavy   with the heavy tenant, no quota
#   capped  with the heavy tenant at max_concurrent_statements = 2, set at run time through
#           the admin API (PUT /admin/v1/tenants/brasserie-berlin/quotas) and removed after
# Goal: capped p99 ≤ 1.5 × quiet p99 (ratio per round, 95% interval over rounds).
#
# The wire door refuses a statement over the quota at once (53400); pgbench gives up on a
# client that gets an error, so in `capped` the heavy tenant keeps the clients that got a
# place. Both tenants share the demo's server us-east-1 (two local clusters, 2 cores).
#
# Usage: bench/neighbour.sh     (about 2 minutes with the defaults)
#   ROUNDS=3  DURATION=10  LIGHT_CLIENTS=4  HEAVY_CLIENTS=8  TG_BIN=path
# Writes bench/results/neighbour-<date>.md. Runs in $BENCH_DIR (default /tmp/tg-nb-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-nb-bench}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
LIGHT_CLIENTS=${LIGHT_CLIENTS:-4}
HEAVY_CLIENTS=${HEAVY_CLIENTS:-8}
LIGHT=pasta-palace
HEAVY=brasserie-berlin
DP_TENANTS="$LIGHT $HEAVY"
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
ADMIN_TOKEN=bench-admin-token-$(date +%s%N)
echo "$ADMIN_TOKEN" > "$BENCH_DIR/demo/admin.token"
dp_serve nb true 'admin_token_file = "admin.token"'
HTTP="http://127.0.0.1:$SERVE_HTTP_PORT_nb"
KL=KEY_$(dp_var $LIGHT); KL=${!KL}
KH=KEY_$(dp_var $HEAVY); KH=${!KH}
for s in DIRECT_HOST DIRECT_PORT; do a=${s}_$(dp_var $LIGHT); b=${s}_$(dp_var $HEAVY); echo "$s: $LIGHT ${!a}, $HEAVY ${!b}" >&2; done

quota() {  # PUT|DELETE
  local body=()
  [ "$1" = PUT ] && body=(-H 'Content-Type: application/json' -d '{"max_concurrent_statements": 2}')
  curl -sf -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" "${body[@]}" "$HTTP/admin/v1/tenants/$HEAVY/quotas" >/dev/null
}

LOAD_START=$(dp_load)
T0=$(date +%s)
RAW="$BENCH_DIR/raw.tsv"
printf 'round\tphase\tp50_ms\tp99_ms\ttps\theavy_statements\theavy_clients_left\n' > "$RAW"

run_phase() {  # ROUND PHASE
  local r=$1 phase=$2 logdir="$BENCH_DIR/log-$1-$2" hpid="" hout="$BENCH_DIR/heavy-$1-$2.out"
  mkdir -p "$logdir"
  [ "$phase" = capped ] && quota PUT
  if [ "$phase" != quiet ]; then
    PGPASSWORD="$KH" pgbench -n -h 127.0.0.1 -p "$SERVE_PG_PORT_nb" -U "$HEAVY" -c "$HEAVY_CLIENTS" -j 2 -T $(( DURATION + 2 )) \
      -f bench/pgbench/heavy.sql app > "$hout" 2>&1 &
    hpid=$!
    sleep 1
  fi
  PGPASSWORD="$KL" pgbench -n -h 127.0.0.1 -p "$SERVE_PG_PORT_nb" -U "$LIGHT" -c "$LIGHT_CLIENTS" -j 2 -T "$DURATION" -M extended \
    -l --log-prefix="$logdir/tx" -f bench/pgbench/point_read.sql app > "$logdir/light.out" 2>&1 || true
  grep -q '^tps = ' "$logdir/light.out" || { echo "light pgbench failed:" >&2; tail "$logdir/light.out" >&2; exit 1; }
  [ -n "$hpid" ] && { wait "$hpid" || true; }
  [ "$phase" = capped ] && quota DELETE
  python3 - "$r" "$phase" "$logdir" "$hout" "$HEAVY_CLIENTS" >> "$RAW" <<'PY'
import glob, os, re, sys
r, phase, logdir, hout, hc = sys.argv[1:6]
t = open(f"{logdir}/light.out").read()
tps = float(re.search(r"^tps = ([0-9.]+)", t, re.M).group(1))
lat = sorted(int(p[2]) / 1000.0 for f in glob.glob(f"{logdir}/tx*") for p in (l.split() for l in open(f)) if len(p) >= 3 and p[2].isdigit())
pick = lambda q: lat[min(len(lat) - 1, max(0, int(round(q * len(lat))) - 1))]
hs, left = "", ""
if os.path.exists(hout):
    h = open(hout).read()
    m = re.search(r"^number of transactions actually processed: (\d+)", h, re.M)
    hs = m.group(1) if m else "?"
    left = str(int(hc) - len(re.findall(r"aborted in command", h)))
print("\t".join([r, phase, f"{pick(0.5):.3f}", f"{pick(0.99):.3f}", f"{tps:.0f}", hs, left]))
PY
  rm -f "$logdir"/tx*
  tail -1 "$RAW" >&2
}

for r in $(seq 1 "$ROUNDS"); do
  for phase in quiet heavy capped; do run_phase "$r" "$phase"; sleep 1; done
done
LOAD_END=$(dp_load)
ELAPSED=$(( $(date +%s) - T0 ))

mkdir -p bench/results
OUT="bench/results/neighbour-$(date +%Y-%m-%d).md"
python3 - "$RAW" "$OUT" "$(dp_machine)" "$LOAD_START" "$LOAD_END" "$DURATION" "$ROUNDS" "$ELAPSED" "$(date -u +%Y-%m-%dT%H:%MZ)" "$LIGHT_CLIENTS" "$HEAVY_CLIENTS" <<'PY'
import csv, statistics, sys
sys.path.insert(0, "bench/lib")
from stats import geo_ci, against_goal
raw, out, machine, ls, le, duration, rounds, elapsed, when, lc, hc = sys.argv[1:12]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
by = {p: {r["round"]: r for r in rows if r["phase"] == p} for p in ["quiet", "heavy", "capped"]}
md = [f"# Noisy-neighbour benchmark (bench/neighbour.sh), {when}", "",
      f"{rounds} rounds, each quiet → heavy → capped, {duration} s of light-tenant load per phase; {int(elapsed) // 60} min {int(elapsed) % 60} s in all.", "",
      f"Machine: {machine}.", "", f"Concurrent load at start: {ls}", "", f"at end: {le}", "",
      f"Light tenant pasta-palace: {lc} pgbench clients of one point read (-M extended). Heavy tenant brasserie-berlin: {hc} pgbench clients of "
      "`SELECT count(*) FROM generate_series(1, 5000000)`. Both through one `tenantgate serve`, gate on, session pooling. "
      "`capped`: the heavy tenant at max_concurrent_statements = 2 (admin API, at run time); its clients over the quota get 53400 and pgbench drops them.", "",
      "| phase | light p50 ms | light p99 ms | light TPS | heavy statements | heavy clients left | p99 / quiet p99 (95% interval) | goal ≤ 1.5× |",
      "|---|---|---|---|---|---|---|---|"]
for p in ["quiet", "heavy", "capped"]:
    rs = [by[p][k] for k in sorted(by[p])]
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    ratio, verdict = "", ""
    if p != "quiet":
        xs = [float(by[p][k]["p99_ms"]) / float(by["quiet"][k]["p99_ms"]) for k in sorted(by[p]) if k in by["quiet"]]
        ci = geo_ci(xs)
        ratio = f"{statistics.geometric_mean(xs):.2f}× ({', '.join(f'{x:.2f}' for x in xs)}; " + (f"{ci[0]:.2f}–{ci[1]:.2f}×)" if ci else "n/a)")
        verdict = against_goal(ci, 1.5, at_most=True) if p == "capped" else "(no quota: the problem)"
    md.append(f"| {p} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {med('tps'):.0f} | {', '.join(r['heavy_statements'] or '–' for r in rs)} | {', '.join(r['heavy_clients_left'] or '–' for r in rs)} | {ratio or '–'} | {verdict or '–'} |")
md += ["", "## Raw runs", "", "| round | phase | p50 ms | p99 ms | TPS | heavy statements | heavy clients left |", "|---|---|---|---|---|---|---|"]
for r in rows:
    md.append("| " + " | ".join(r[k] for k in ["round", "phase", "p50_ms", "p99_ms", "tps", "heavy_statements", "heavy_clients_left"]) + " |")
open(out, "w").write("\n".join(md) + "\n")
PY
cp "$RAW" "${OUT%.md}.tsv"
cat "$OUT"
