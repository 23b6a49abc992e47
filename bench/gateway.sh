#!/usr/bin/env bash
# Wire-gateway benchmark (issue 3): pgbench TPS on the example restaurant schema, as a
# tenant, through
#   tenantgate with the gate on (one thread, and one per CPU) · tenantgate with the gate off · PgBouncer (session) ·
#   PgBouncer (transaction) · PostgreSQL directly,
# all logged in as the same tenant role (same RLS), at 1, 8 and 32 clients, with
#   bench/pgbench/select_only.sql  two point reads by primary key (orders, menu_items)
#   bench/pgbench/read_write.sql   BEGIN; insert an order + 2 order_items; update; select; COMMIT
# This machine's pgbench TPS varies by up to 2x between consecutive runs of a few
# seconds (see the control-plane section of bench/RESULTS.md), so each (script, clients)
# cell runs ROUNDS rounds, each round the paths back to back (so drift hits them alike), in
# an order rotated by one each round; a cell reports the median TPS of each path and the
# median of the per-round ratios.
#
# Usage: bench/gateway.sh      (about 21 minutes with the defaults; MODES=simple DB_TENANT_CLIENTS="" about 15)
#   ROUNDS=3              rounds per cell
#   DURATION=5            seconds per pgbench run
#   WARMUP=1              seconds of unmeasured pgbench, same clients, right before each run
#   MODES="simple prepared"  pgbench -M protocols for the pooled tenant (PgBouncer 1.18 in
#                         transaction mode cannot do named prepared statements: skipped there)
#   CLIENTS="1 8 32"
#   SCRIPTS="select_only read_write"
#   PATHS=""              a subset of the paths below to run (empty: all of them), e.g.
#                         PATHS="gate-on pgbouncer-session pgbouncer-transaction"
#   DB_TENANT_CLIENTS=8   the database-placement tenant (brasserie-berlin, eu-1) runs -M simple
#                         at these client counts; empty skips it
#   OUT_NAME=name         results file name (default gateway-<date>)
#   TG_BIN=path           use a prebuilt binary instead of `cargo build --release`
#   TG_BIN_BASELINE=path  also serve this build (gate on) as path gate-on-base, for a
#                         before/after comparison of two builds in one run
#   WORKER_THREADS=1      gateway.worker_threads of the gate-on and gate-off gateways (the
#                         gate-on-mt path always runs one thread per CPU)
# Writes bench/results/gateway-<date>.md (the figures for bench/RESULTS.md). Runs in $BENCH_DIR (default /tmp/tg-gw-bench), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-gw-bench}
DURATION=${DURATION:-5}
export WARMUP=${WARMUP:-1}
SCRIPTS=${SCRIPTS:-"select_only read_write"}
PATHS=${PATHS:-}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"simple prepared"}
CLIENTS=${CLIENTS:-"1 8 32"}
DB_TENANT_CLIENTS=${DB_TENANT_CLIENTS-8}
POOLED=pasta-palace
DBT=brasserie-berlin
DP_TENANTS="$POOLED"
[ -n "$DB_TENANT_CLIENTS" ] && DP_TENANTS="$POOLED $DBT"
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
# Gate on and off with WORKER_THREADS threads (default 1: like PgBouncer, one thread); gate on
# also with one thread per CPU (path gate-on-mt), the default of `tenantgate serve`.
WORKER_THREADS=${WORKER_THREADS:-1}
dp_serve on true "" "$WORKER_THREADS"
dp_serve off false "" "$WORKER_THREADS"
dp_serve mt true "" 0
# TG_BIN_BASELINE: another build (say, the previous commit's) served as path gate-on-base
# with the gate on, the same settings and threads, to compare builds within one run.
if [ -n "${TG_BIN_BASELINE:-}" ]; then
  cp "$TG_BIN_BASELINE" "$BIN_DIR/tenantgate-baseline"
  TG_MAIN=$TG; TG="$BIN_DIR/tenantgate-baseline"
  dp_serve base true "" "$WORKER_THREADS"
  TG=$TG_MAIN
fi
for t in $DP_TENANTS; do
  v=$(dp_var "$t")
  dp_pgbouncer "session_$v" session "$t"
  dp_pgbouncer "transaction_$v" transaction "$t"
done
LOAD_START=$(dp_load)
T0=$(date +%s)

RAW="$BENCH_DIR/raw.tsv"
printf 'tenant\tmode\tscript\tclients\tround\tpath\ttps\tlat_ms\tfailed\tproxy_cpu_us_per_tx\terror\n' > "$RAW"
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# run_one TENANT MODE SCRIPT CLIENTS ROUND PATH
run_one() {
  local slug=$1 mode=$2 script=$3 c=$4 round=$5 path=$6 v host port user db pw out tps lat failed err pid="" t0 t1 ntx cpu=""
  v=$(dp_var "$slug")
  host=127.0.0.1
  case $path in
    gate-on)  port=SERVE_PG_PORT_on;  port=${!port}; pid=$SERVE_PID_on; user=$slug; db=app; pw=KEY_$v; pw=${!pw};;
    gate-off) port=SERVE_PG_PORT_off; port=${!port}; pid=$SERVE_PID_off; user=$slug; db=app; pw=KEY_$v; pw=${!pw};;
    gate-on-base) port=SERVE_PG_PORT_base; port=${!port}; pid=$SERVE_PID_base; user=$slug; db=app; pw=KEY_$v; pw=${!pw};;
    gate-on-mt) port=SERVE_PG_PORT_mt; port=${!port}; pid=$SERVE_PID_mt; user=$slug; db=app; pw=KEY_$v; pw=${!pw};;
    pgbouncer-session|pgbouncer-transaction)
      port=PGB_PORT_${path#pgbouncer-}_$v; port=${!port}; pid=PGB_PID_${path#pgbouncer-}_$v; pid=${!pid}
      user=DIRECT_USER_$v; user=${!user}; db=DIRECT_DB_$v; db=${!db}; pw=DIRECT_PW_$v; pw=${!pw};;
    direct)
      host=DIRECT_HOST_$v; host=${!host}; port=DIRECT_PORT_$v; port=${!port}
      user=DIRECT_USER_$v; user=${!user}; db=DIRECT_DB_$v; db=${!db}; pw=DIRECT_PW_$v; pw=${!pw};;
  esac
  local j=$(( c < 2 ? c : 2 ))
  out="$BENCH_DIR/pgbench-$slug-$mode-$script-$c-$round-$path.out"
  # Warm-up, not measured: the same clients for WARMUP s, so every path starts its measured
  # run on backends it already holds. Without it the paths pay for new backends differently:
  # the gateway opens them while clients log in (outside pgbench's TPS), PgBouncer on the
  # first query, one at a time (inside it).
  [ "$WARMUP" -gt 0 ] && PGPASSWORD="$pw" pgbench -n -h "$host" -p "$port" -U "$user" -c "$c" -j "$j" -T "$WARMUP" -M "$mode" \
    -f "bench/pgbench/$script.sql" "$db" > /dev/null 2>&1 || true
  [ -n "$pid" ] && t0=$(dp_cpu_ticks "$pid")
  PGPASSWORD="$pw" pgbench -n -h "$host" -p "$port" -U "$user" -c "$c" -j "$j" -T "$DURATION" -M "$mode" \
    -f "bench/pgbench/$script.sql" "$db" > "$out" 2>&1 || true
  [ -n "$pid" ] && t1=$(dp_cpu_ticks "$pid")
  tps=$(awk '/^tps = / {printf "%.0f", $3; exit}' "$out")
  ntx=$(awk '/^number of transactions actually processed: / {print $6; exit}' "$out")
  # The proxy's own CPU per transaction (includes connection setup, negligible over a run).
  [ -n "$pid" ] && [ -n "$ntx" ] && [ "$ntx" -gt 0 ] && cpu=$(( (t1 - t0) * TICK_US / ntx ))
  lat=$(awk '/^latency average = / {print $4; exit}' "$out")
  failed=$(awk '/^number of failed transactions: / {print $5; exit}' "$out")
  err=$(grep -m1 -E 'ERROR|FATAL|aborted|error' "$out" | tr '\t' ' ' | cut -c1-200 || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$slug" "$mode" "$script" "$c" "$round" "$path" "${tps:-0}" "${lat:-}" "${failed:-?}" "$cpu" "$err" >> "$RAW"
  printf '%-16s %-9s %-12s c=%-3s r%s %-22s tps=%s cpu/tx=%sus %s\n' "$slug" "$mode" "$script" "$c" "$round" "$path" "${tps:-0}" "$cpu" "$err" >&2
}

# rotated ROUND PATH...: the paths, starting at position (ROUND - 1) mod their count, so
# over the rounds every path runs in every position (no path always runs first, right after
# another path's load, or always last).
rotated() {
  local r=$1; shift
  local a=("$@")
  local k=$(( (r - 1) % ${#a[@]} ))
  echo "${a[@]:k}" "${a[@]:0:k}"
}

paths_for() {  # MODE
  local all
  if [ "$1" = prepared ]; then all="gate-on gate-on-mt gate-off pgbouncer-session direct"
  else all="gate-on gate-on-mt gate-off pgbouncer-session pgbouncer-transaction direct"; fi
  [ -n "${TG_BIN_BASELINE:-}" ] && all="gate-on gate-on-base ${all#gate-on }"
  [ -z "$PATHS" ] && { echo "$all"; return; }
  local p out=""
  for p in $all; do case " $PATHS " in *" $p "*) out="$out $p";; esac; done
  echo "$out"
}

for mode in $MODES; do
  for script in $SCRIPTS; do
    for c in $CLIENTS; do
      for r in $(seq 1 "$ROUNDS"); do
        for path in $(rotated "$r" $(paths_for "$mode")); do run_one "$POOLED" "$mode" "$script" "$c" "$r" "$path"; done
      done
    done
  done
done
for c in $DB_TENANT_CLIENTS; do
  for script in $SCRIPTS; do
    for r in $(seq 1 "$ROUNDS"); do
      for path in $(rotated "$r" $(paths_for simple)); do run_one "$DBT" simple "$script" "$c" "$r" "$path"; done
    done
  done
done

LOAD_END=$(dp_load)
ELAPSED=$(( $(date +%s) - T0 ))
mkdir -p bench/results
OUT="bench/results/${OUT_NAME:-gateway-$(date +%Y-%m-%d)}.md"
python3 bench/lib/gateway_report.py "$RAW" "$OUT" \
  "$(dp_machine)" "$LOAD_START" "$LOAD_END" "$DURATION" "$ROUNDS" "$ELAPSED" "$(date -u +%Y-%m-%dT%H:%MZ)"
cp "$RAW" "${OUT%.md}.tsv"
cat "$OUT"
