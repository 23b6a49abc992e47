#!/usr/bin/env bash
# Scale benchmark (issue #18): 10,000 tenants on the demo's two local servers (us-1, eu-1).
#
#   create    SCALE_N tenants (95% pooled, 4.5% schema, 0.5% database; default 10,000 =
#             9,500 / 450 / 50), each placement alternated over us-1 and eu-1 and spread evenly
#             through the sequence, CREATE_JOBS (default 2) `tenant create` CLI calls at once.
#             Per placement: server-side elapsed and CLI wall time p50/p95, tenants/s, and the
#             first-1000 vs last-1000 medians (flatness); then FLAT_N (20) creates per
#             placement alternated between this deployment and a fresh demo deployment, the
#             same-minutes baseline for flatness.
#   migrate   `tenantgate migrate` with nothing pending (median of 3), then with one
#             `ALTER TABLE orders ADD COLUMN` pending, over every target.
#   list      `tenantgate tenant list` and `tenant list --json` (median of 3).
#   gateway   `tenantgate serve` (product defaults but the listen ports): RSS after start;
#             cold and warm connect + SELECT 1 for SCALE_CONNECT (default 2,000) distinct
#             tenants, with a direct-to-PostgreSQL baseline; RSS and tenant backends in
#             pg_stat_activity right after, and again after the pool idle timeout; the
#             /metrics tenant-label cardinality (fails the run if over top_tenants + 1).
#   fairness  a second gateway with server_budget = FAIR_BUDGET (30): five tenants on us-1
#             each open 3x their fair share (budget / 6) of pg_sleep sessions and retry when
#             refused; a sixth tenant connects + SELECT 1 50 times, then tenants 7-10 arrive
#             together 15 times. Goal: the sixth within 100 ms p99. Its own tenants (fair-01..10).
#
# Usage: bench/scale.sh [--only create|migrate|list|gateway|fairness] [N]
#   N or SCALE_N: tenants to create (default 10000). `--only fairness` creates only its own
#   ten tenants and writes bench/results/scale-fairness-<date>T<time>Z.md; every other run
#   writes bench/results/scale-<date>.md (with --only, sections it needs run too: migrate,
#   list and gateway need the tenants, so they imply create). SCALE_OUT=path names the file.
# Uses its own demo deployment under $BENCH_DIR (default /tmp/tg-scale), never ./.tenantgate;
# a private copy of the release binary (TG_BIN=path to use a prebuilt one, TG_BIN_NOTE to
# say what it is built from). KEEP_BENCH_DIR=1 keeps the deployment's files (clusters are
# stopped either way).
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --only) ONLY=$2; shift 2;;
    --only=*) ONLY=${1#--only=}; shift;;
    -h|--help) sed -n '2,30p' "$0"; exit 0;;
    *) SCALE_N=$1; shift;;
  esac
done
case "$ONLY" in ""|create|migrate|list|gateway|fairness) ;; *) echo "unknown section: $ONLY" >&2; exit 2;; esac
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ] || { [ "$1" = create ] && [ "$ONLY" != fairness ]; }; }

SCALE_N=${SCALE_N:-10000}
SCALE_CONNECT=${SCALE_CONNECT:-2000}
[ "$SCALE_CONNECT" -le "$SCALE_N" ] || SCALE_CONNECT=$SCALE_N
CREATE_JOBS=${CREATE_JOBS:-2}
FLAT_N=${FLAT_N:-20}                # creates per placement for the big-vs-fresh comparison (0 skips)
JOBS=${JOBS:-4}
IDLE_WAIT=${IDLE_WAIT:-75}          # seconds after the connects; the default pool_idle_timeout_ms is 60,000
TOP=${TOP:-20}                      # [http.metrics] top_tenants (the product's default)
FAIR_BUDGET=${FAIR_BUDGET:-30}
FAIR_CHECKOUT_MS=${FAIR_CHECKOUT_MS:-2000}
export BENCH_DIR=${BENCH_DIR:-/tmp/tg-scale}
DP_TENANTS=" "   # bench/lib/dataplane.sh: no pgbench tables, no demo keys
source bench/lib/dataplane.sh
PY="python3 $PWD/bench/lib/scale.py"
R="$BENCH_DIR/results"   # raw results of this run

START_UTC=$(date -u +%Y-%m-%dT%H:%MZ)
LOAD_START=$(dp_load)
dp_setup
[ -n "${TG_BIN_NOTE:-}" ] && BUILD="$BUILD; $TG_BIN_NOTE"
mkdir -p "$R"
CFG=$TENANTGATE_CONFIG
admin_psql() {  # admin_psql SERVER DB SQL
  local url
  url=$(python3 -c "import tomllib,sys; print(next(s['url'] for s in tomllib.load(open(sys.argv[1],'rb'))['servers'] if s['name']==sys.argv[2]))" "$CFG" "$1")
  psql -X -At "${url%/postgres}/$2" -c "$3"
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
tenant_backends() { admin_psql "$1" postgres "SELECT count(*) FROM pg_stat_activity WHERE usename ~ '^t[0-9a-f]{12}(_ro)?\$'"; }

# serve NAME EXTRA_GATEWAY_TOML: a gateway on free ports; sets SERVE_PID, SERVE_PG, SERVE_HTTP.
serve() {
  local name=$1 extra=$2 cfg i
  SERVE_PG=$(free_port); SERVE_HTTP=$(free_port)
  cfg="$BENCH_DIR/demo/serve-$name.toml"   # paths in the config are relative to its directory
  cp "$CFG" "$cfg"
  cat >> "$cfg" <<EOF

[gateway]
listen = "127.0.0.1:$SERVE_PG"
$extra

[http]
listen = "127.0.0.1:$SERVE_HTTP"

[http.metrics]
top_tenants = $TOP

[http.rate_limit]
rate_per_second = 0
EOF
  cp "$cfg" "$R/serve-$name.toml"
  "$TG" serve --config "$cfg" > "$BENCH_DIR/serve-$name.log" 2>&1 &
  SERVE_PID=$!
  DP_PIDS+=("$SERVE_PID")
  for i in $(seq 1 150); do
    grep -q 'HTTP API listening' "$BENCH_DIR/serve-$name.log" && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$BENCH_DIR/serve-$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "gateway $name did not start:" >&2; cat "$BENCH_DIR/serve-$name.log" >&2; exit 1
}
# Also stop the fresh deployment of the create section if a run ends inside it.
scale_cleanup() {
  local rc=$?
  [ -d "$BENCH_DIR/fresh" ] && "$TG" demo --dir "$BENCH_DIR/fresh" --stop >/dev/null 2>&1
  (exit $rc); dp_cleanup
}
trap scale_cleanup EXIT
stop_serve() {
  kill "$SERVE_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$SERVE_PID" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$SERVE_PID" 2>/dev/null || true
}

# ---- create
if want create; then
  echo "== creating $SCALE_N tenants ($CREATE_JOBS at a time)" >&2
  $PY plan "$SCALE_N" > "$R/plan.tsv"
  CREATE_SECONDS=$($PY create "$TG" "$R/plan.tsv" "$R/create.tsv" "$CREATE_JOBS")
  echo "$CREATE_SECONDS" > "$R/create_seconds"
  failed=$(awk -F'\t' 'NR > 1 && $5 == ""' "$R/create.tsv" | wc -l)
  [ "$failed" = 0 ] || { echo "$failed tenant create(s) failed after 3 tries:" >&2; awk -F'\t' 'NR > 1 && $5 == ""' "$R/create.tsv" | head -3 >&2; exit 1; }
  if [ "$FLAT_N" -gt 0 ]; then
    # Big vs fresh, alternated in the same minutes: the noise of a shared machine moves
    # first-1000 vs last-1000 more than the tenant count does (see the report).
    echo "== $FLAT_N creates per placement, alternating: this deployment vs a fresh one" >&2
    "$TG" demo --dir "$BENCH_DIR/fresh" --reset --no-serve > "$BENCH_DIR/fresh.out"
    $PY ab "$TG" "$CFG" "$BENCH_DIR/fresh/tenantgate.toml" "$FLAT_N" "$R/ab.json"
    "$TG" demo --dir "$BENCH_DIR/fresh" --stop >/dev/null
  fi
  for s in us-1 eu-1; do
    echo "$s $(admin_psql "$s" postgres "SELECT count(*) FROM pg_roles WHERE rolname ~ '^t[0-9a-f]{12}(_ro)?\$'") $(admin_psql "$s" postgres "SELECT count(*) FROM pg_database WHERE datname ~ '^t[0-9a-f]{12}\$'")"
  done > "$R/roles.txt"
fi

# ---- migrate
# Time one `migrate --json` run; prints "seconds migrated targets". Fails loudly if a target
# failed, so a broken run is never recorded as a fast one (as bench/control_plane.sh).
timed_migrate() {
  local t0 t1 rc=0
  t0=$(date +%s.%N); "$TG" migrate --jobs "$JOBS" --json > "$BENCH_DIR/migrate.json" || rc=$?; t1=$(date +%s.%N)
  python3 - "$t0" "$t1" "$rc" "$BENCH_DIR/migrate.json" <<'PY'
import json, sys
t0, t1, rc, path = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(path))["report"]
failed = [o for o in r["outcomes"] if o["error"]]
if rc or failed:
    sys.exit(f"migrate failed (exit {rc}) on {len(failed)} target(s), e.g. {failed[:1]}")
print(f"{t1 - t0:.3f} {len(r['outcomes'])}")
PY
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
if want migrate; then
  echo "== migrate, nothing pending (3 runs)" >&2
  runs=()
  for _ in 1 2 3; do
    read -r secs migrated <<<"$(timed_migrate)"
    [ "$migrated" = 0 ] || { echo "a no-op migrate migrated $migrated targets" >&2; exit 1; }
    runs+=("$secs")
  done
  echo "== migrate, one ADD COLUMN pending" >&2
  echo "ALTER TABLE orders ADD COLUMN scale_note text;" > "$BENCH_DIR/demo/restaurant/migrations/0099_scale_note.sql"
  read -r pending pending_migrated <<<"$(timed_migrate)"
  read -r targets at_latest <<<"$("$TG" migrate status --json | python3 -c '
import json,sys; d=json.load(sys.stdin); t=d["targets"]
print(len(t), sum(1 for x in t if x["version"] == d["latest"] and not x["last_error"]))')"
  [ "$targets" = "$at_latest" ] || { echo "only $at_latest of $targets targets reached the latest version" >&2; exit 1; }
  python3 -c 'import json,sys; print(json.dumps({"noop_runs": [float(x) for x in sys.argv[1].split()], "pending": float(sys.argv[2]), "pending_migrated": int(sys.argv[3]), "targets": int(sys.argv[4]), "jobs": int(sys.argv[5])}))' \
    "${runs[*]}" "$pending" "$pending_migrated" "$targets" "$JOBS" > "$R/migrate.json"
fi

# ---- tenant list
if want list; then
  echo "== tenant list (3 runs each)" >&2
  for fmt in text json; do
    : > "$R/list-$fmt.txt"
    for _ in 1 2 3; do
      t0=$(date +%s%N)
      if [ $fmt = json ]; then "$TG" tenant list --json > "$BENCH_DIR/list.out"; else "$TG" tenant list > "$BENCH_DIR/list.out"; fi
      t1=$(date +%s%N)
      echo "$(( (t1 - t0) / 1000000 )) $(wc -l < "$BENCH_DIR/list.out") $(wc -c < "$BENCH_DIR/list.out")" >> "$R/list-$fmt.txt"
    done
  done
fi

# ---- gateway: RSS, cold/warm connects, idle backends, /metrics
if want gateway; then
  echo "== gateway: $SCALE_CONNECT distinct tenants, cold then warm" >&2
  # The first SCALE_CONNECT tenants of the creation order: all three placements, both servers.
  awk -F'\t' -v n="$SCALE_CONNECT" 'NR > 1 && NR <= n + 1 {print $2}' "$R/create.tsv" > "$BENCH_DIR/connect-slugs.txt"
  $PY keys "$TG" "$BENCH_DIR/connect-slugs.txt" "$BENCH_DIR/connect-keys.tsv" "$CREATE_JOBS"
  serve main ""
  sleep 2
  RSS_START=$(rss_kb "$SERVE_PID")
  $PY connect "$CFG" "$R/create.tsv" "$BENCH_DIR/connect-keys.tsv" "$SERVE_PG" "$R/connect.json" "${DIRECT_N:-300}"
  RSS_AFTER=$(rss_kb "$SERVE_PID"); HWM_AFTER=$(hwm_kb "$SERVE_PID")
  sleep 1
  BE_US_AFTER=$(tenant_backends us-1); BE_EU_AFTER=$(tenant_backends eu-1)
  echo "== one /v1/sql SELECT 1 per tenant, then /metrics" >&2
  $PY http "http://127.0.0.1:$SERVE_HTTP" "$BENCH_DIR/connect-keys.tsv" "$R/http.json"
  RSS_HTTP=$(rss_kb "$SERVE_PID")
  metrics_rc=0
  $PY metrics "http://127.0.0.1:$SERVE_HTTP/metrics" "$TOP" "$R/metrics.json" || metrics_rc=$?
  echo "== idle ${IDLE_WAIT}s (pool_idle_timeout_ms default 60000)" >&2
  sleep "$IDLE_WAIT"
  RSS_IDLE=$(rss_kb "$SERVE_PID"); HWM_IDLE=$(hwm_kb "$SERVE_PID")
  BE_US_IDLE=$(tenant_backends us-1); BE_EU_IDLE=$(tenant_backends eu-1)
  python3 -c 'import json,sys; k=["rss_start","rss_after","hwm_after","be_us_after","be_eu_after","rss_http","rss_idle","hwm_idle","be_us_idle","be_eu_idle","metrics_rc"]; print(json.dumps(dict(zip(k, map(int, sys.argv[1:])))))' \
    "$RSS_START" "$RSS_AFTER" "$HWM_AFTER" "$BE_US_AFTER" "$BE_EU_AFTER" "$RSS_HTTP" "$RSS_IDLE" "$HWM_IDLE" "$BE_US_IDLE" "$BE_EU_IDLE" "$metrics_rc" > "$R/gateway.json"
  stop_serve
fi

# ---- fairness
if want fairness; then
  echo "== fairness: budget $FAIR_BUDGET on us-1" >&2
  : > "$BENCH_DIR/fair-slugs.txt"
  for i in $(seq -w 1 10); do
    "$TG" tenant create "fair-$i" --placement pooled --server us-1 >/dev/null
    echo "fair-$i" >> "$BENCH_DIR/fair-slugs.txt"
  done
  $PY keys "$TG" "$BENCH_DIR/fair-slugs.txt" "$BENCH_DIR/fair-keys.tsv" 2
  serve fair "server_budget = $FAIR_BUDGET
checkout_timeout_ms = $FAIR_CHECKOUT_MS"
  sleep 1
  $PY fairness "$CFG" "$BENCH_DIR/fair-keys.tsv" "$SERVE_PG" "$R/fairness.json" "$FAIR_BUDGET"
  stop_serve
fi

LOAD_END=$(dp_load)
mkdir -p bench/results
# Named after the start of the run (a full run may cross midnight); SCALE_OUT overrides.
if [ -n "${SCALE_OUT:-}" ]; then OUT=$SCALE_OUT
elif [ "$ONLY" = fairness ]; then OUT="bench/results/scale-fairness-${START_UTC//:/}.md"
else OUT="bench/results/scale-${START_UTC%%T*}.md"; fi
python3 bench/lib/scale_report.py "$R" "$OUT" "$(dp_machine)" "$LOAD_START" "$LOAD_END" "$START_UTC" "${ONLY:-all}" \
  "$SCALE_N" "$CREATE_JOBS" "$TOP" "$FAIR_CHECKOUT_MS" "$IDLE_WAIT"
cat "$OUT"
if [ "${metrics_rc:-0}" != 0 ]; then
  echo "FAIL: /metrics has more than top_tenants + 1 = $((TOP + 1)) tenant label values on some metric (see $OUT)" >&2
  exit 1
fi
