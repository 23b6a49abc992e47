#!/usr/bin/env bash
# The floor of forwarding (docs/decisions.md, "relay threads"): pgbench through two bare
# byte relays with no tenantgate code in them, one a tokio task per connection on a
# current-thread runtime (bench/relay-baseline/src/bin/tokio_relay.rs), one a single mio
# epoll loop (mio_relay.rs), against PgBouncer in session mode and tenantgate with the gate
# on (one runtime thread, so one relay thread), all logged in as the same tenant role.
# Rounds run the paths back to back in an order rotated by one each round; each measured
# run follows WARMUP seconds of unmeasured load; the report gives the median of the
# per-round ratios against PgBouncer and the 95% interval of their geometric mean.
#
# Usage: bench/relay_baseline.sh     (about 4 minutes with the defaults)
#   ROUNDS=8  DURATION=6  WARMUP=1  CLIENTS=1  MODE=prepared  SCRIPT=select_only
#   TG_BIN=path  BENCH_DIR=/tmp/tg-relay-baseline  OUT_NAME=relay-baseline-<date>
# Writes bench/results/$OUT_NAME.md.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/tg-relay-baseline}
DP_TENANTS=pasta-palace
ROUNDS=${ROUNDS:-8}; DURATION=${DURATION:-6}; WARMUP=${WARMUP:-1}
CLIENTS=${CLIENTS:-1}; MODE=${MODE:-prepared}; SCRIPT=${SCRIPT:-select_only}
OUT_NAME=${OUT_NAME:-relay-baseline-$(date -u +%F)}
. "$REPO/bench/lib/dataplane.sh"

echo "== build the bare relays"
CARGO_TARGET_DIR="$REPO/target/relay-baseline" cargo build -q --release --manifest-path "$REPO/bench/relay-baseline/Cargo.toml"
RB="$REPO/target/relay-baseline/release"
echo "== setup"
dp_setup
dp_serve tg true "" 1
dp_pgbouncer pgb session pasta-palace
up="$DIRECT_HOST_pasta_palace:$DIRECT_PORT_pasta_palace"
TOKIO_PORT=$(free_port); MIO_PORT=$(free_port)
"$RB/tokio_relay" "127.0.0.1:$TOKIO_PORT" "$up" & DP_PIDS+=($!); TOKIO_PID=$!
"$RB/mio_relay" "127.0.0.1:$MIO_PORT" "$up" & DP_PIDS+=($!); MIO_PID=$!
sleep 0.5

names=(tokio-relay mio-relay pgbouncer-session tenantgate)
ports=("$TOKIO_PORT" "$MIO_PORT" "$PGB_PORT_pgb" "$SERVE_PG_PORT_tg")
pids=("$TOKIO_PID" "$MIO_PID" "$PGB_PID_pgb" "$SERVE_PID_tg")
TSV="$BENCH_DIR/runs.tsv"; : > "$TSV"
jobs=$(( CLIENTS < 2 ? 1 : 2 ))
run() { # round index
  local i=$2 user=$DIRECT_USER_pasta_palace pw=$DIRECT_PW_pasta_palace out t0 t1 tps tx
  if [ "${names[$i]}" = tenantgate ]; then user=pasta-palace; pw=$KEY_pasta_palace; fi
  local args=(-n -h 127.0.0.1 -p "${ports[$i]}" -U "$user" -c "$CLIENTS" -j "$jobs" -M "$MODE" -f "$REPO/bench/pgbench/$SCRIPT.sql" "$DIRECT_DB_pasta_palace")
  PGPASSWORD="$pw" pgbench "${args[@]}" -T "$WARMUP" >/dev/null 2>&1 || true
  t0=$(dp_cpu_ticks "${pids[$i]}")
  out=$(PGPASSWORD="$pw" pgbench "${args[@]}" -T "$DURATION" 2>&1) || { echo "$out" >&2; exit 1; }
  t1=$(dp_cpu_ticks "${pids[$i]}")
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  printf '%s\t%s\t%s\t%s\n' "$1" "${names[$i]}" "$tps" "$(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / (tx > 0 ? tx : 1) ))" | tee -a "$TSV"
}
echo "== $ROUNDS rounds, $CLIENTS clients, -M $MODE, $SCRIPT"
START_LOAD=$(dp_load)
for r in $(seq 1 "$ROUNDS"); do
  for k in 0 1 2 3; do run "$r" $(( (k + r) % 4 )); done
done
mkdir -p "$REPO/bench/results"
python3 - "$TSV" "$REPO/bench/lib" > "$REPO/bench/results/$OUT_NAME.md" <<PY
import collections, statistics as st, sys
sys.path.insert(0, sys.argv[2])
from stats import geo_ci
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
tps = collections.defaultdict(dict); cpu = collections.defaultdict(list)
for r, name, t, c in rows:
    tps[r][name] = float(t); cpu[name].append(int(c))
print("# Forwarding floor: bare relays vs PgBouncer vs tenantgate (bench/relay_baseline.sh), $(date -u +%FT%H:%MZ)\n")
print("$ROUNDS rounds × $DURATION s, $CLIENTS clients, pgbench -M $MODE, $SCRIPT.sql, pooled tenant; paths back to back, order rotated each round, $WARMUP s warm-up before each run.\n")
print("Machine: $(dp_machine)\n")
print("Load at start: $START_LOAD\n")
print("| path | median TPS | / PgBouncer session (median of per-round ratios) | 95% interval of their geometric mean | proxy CPU µs/tx (median) |")
print("|---|---|---|---|---|")
for name in ["tokio-relay", "mio-relay", "pgbouncer-session", "tenantgate"]:
    ratios = [d[name] / d["pgbouncer-session"] for d in tps.values() if d.get(name) and d.get("pgbouncer-session")]
    ci = geo_ci(ratios)
    ci = f"{ci[0]*100:.0f}–{ci[1]*100:.0f}%" if ci else "–"
    print(f"| {name} | {st.median(d[name] for d in tps.values()):.0f} | {st.median(ratios)*100:.0f}% | {ci} | {st.median(cpu[name])} |")
print("\nRaw runs (round, path, TPS, proxy CPU µs/tx):\n")
print("\`\`\`")
for r in rows: print("\t".join(r))
print("\`\`\`")
PY
cat "$REPO/bench/results/$OUT_NAME.md" | sed -n 1,12p
