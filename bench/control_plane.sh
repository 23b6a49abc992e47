#!/usr/bin/env bash
# Control-plane benchmark (issue: control plane foundation).
#
#   1. tenant creation time per placement (server-side elapsed, from `tenant create --json`);
#   2. `tenantgate migrate` over 1,000 schema tenants: nothing pending, then one
#      `ALTER TABLE ... ADD COLUMN` pending;
#   3. the RLS policy's cost: pgbench point queries as a tenant role through RLS, against
#      the same query with a hand-written `WHERE tenant_id = ...` on an identical table
#      without RLS, same role, same run. Reported as a ratio (median of alternating
#      rounds), plus a server-side PL/pgSQL loop that measures the per-query cost without
#      network or client noise.
#
# Usage: bench/control_plane.sh [N_SCHEMA_TENANTS]   (default 1000)
# Writes bench/results/control_plane-<date>.md and prints it. Uses its own demo
# deployment under $BENCH_DIR (default /tmp/tg-bench), so it never touches ./.tenantgate.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
BENCH_DIR=${BENCH_DIR:-/tmp/tg-bench}
CREATE_N=${CREATE_N:-20}
# Benchmarks measure the optimised binary, never a debug build. TG_BIN=path skips the
# build and uses that binary (e.g. while the workspace does not compile).
if [ -z "${TG_BIN:-}" ]; then
  cargo build -q --release -p tenantgate
  TG_BIN="$PWD/target/release/tenantgate"
  BUILD="release build of tenantgate at \`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- crates/control crates/tenantgate || echo ' + uncommitted changes in crates/control or crates/tenantgate')"
else
  BUILD="prebuilt tenantgate binary (TG_BIN, built $(date -u -r "$TG_BIN" +%Y-%m-%dT%H:%MZ))"
fi
# Run a private copy: a concurrent `cargo build --release` must not swap the binary mid-run.
BIN_DIR=$(mktemp -d)
trap 'rm -rf "$BIN_DIR"' EXIT
cp "$TG_BIN" "$BIN_DIR/tenantgate"
TG="$BIN_DIR/tenantgate"

"$TG" demo --dir "$BENCH_DIR" --reset --no-serve >/dev/null
export TENANTGATE_CONFIG="$BENCH_DIR/tenantgate.toml"
URL=$(sed -n 's/^url = "\(postgres:.*\/\)postgres"$/\1/p' "$TENANTGATE_CONFIG" | head -1)  # us-1 admin URL prefix

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Nearest-rank p95: the ceil(0.95 * n)-th smallest value.
p95() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.95); if (i < NR*0.95) i++; if (i<1) i=1; print a[i]}'; }

echo "== tenant creation ($CREATE_N per placement)" >&2
declare -A MED P95 WALL
for placement in pooled schema database; do
  : > "$BENCH_DIR/create-$placement.txt"
  : > "$BENCH_DIR/create-$placement-wall.txt"
  for i in $(seq 1 "$CREATE_N"); do
    w0=$(date +%s%N)
    "$TG" tenant create "bench-$placement-$i" --placement "$placement" --server us-1 --json > "$BENCH_DIR/create.json"
    w1=$(date +%s%N)
    python3 -c 'import json,sys; print(json.load(sys.stdin)["elapsed_ms"])' < "$BENCH_DIR/create.json" >> "$BENCH_DIR/create-$placement.txt"
    echo $(( (w1 - w0) / 1000000 )) >> "$BENCH_DIR/create-$placement-wall.txt"
  done
  MED[$placement]=$(median < "$BENCH_DIR/create-$placement.txt")
  P95[$placement]=$(p95 < "$BENCH_DIR/create-$placement.txt")
  WALL[$placement]=$(median < "$BENCH_DIR/create-$placement-wall.txt")
done

echo "== creating $N schema tenants" >&2
start=$(date +%s)
for i in $(seq 1 "$N"); do
  "$TG" tenant create "mig-$i" --placement schema --server us-1 >/dev/null
done
create_all=$(( $(date +%s) - start ))

JOBS=${JOBS:-4}
# Time one `migrate --json` run; prints "seconds migrated failed". Fails loudly if a
# target failed, so a broken run is never recorded as a fast one.
timed_migrate() {
  local t0 t1 rc=0
  t0=$(date +%s.%N); "$TG" migrate --jobs "$JOBS" --json > "$BENCH_DIR/migrate.json" || rc=$?; t1=$(date +%s.%N)
  python3 - "$t0" "$t1" "$rc" "$BENCH_DIR/migrate.json" <<'PY'
import json, sys
t0, t1, rc, path = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = json.load(open(path))["report"]
failed = [o for o in r["outcomes"] if o["error"]]
migrated = len(r["outcomes"]) - len(failed)
if rc or failed:
    sys.exit(f"migrate failed (exit {rc}) on {len(failed)} target(s), e.g. {failed[:1]}")
print(f"{t1 - t0:.3f} {migrated} {len(failed)}")
PY
}

echo "== migrate, nothing pending (3 runs)" >&2
noop_runs=()
for r in 1 2 3; do
  out=$(timed_migrate); read -r secs migrated _ <<<"$out"
  [ "$migrated" = 0 ] || { echo "a no-op migrate migrated $migrated targets" >&2; exit 1; }
  noop_runs+=("$secs")
done
noop=$(printf '%s\n' "${noop_runs[@]}" | median)

echo "== migrate, one ADD COLUMN pending" >&2
MIGDIR="$BENCH_DIR/restaurant/migrations"
echo "ALTER TABLE orders ADD COLUMN bench_note text;" > "$MIGDIR/0099_bench_note.sql"
out=$(timed_migrate); read -r pending pending_migrated _ <<<"$out"
out=$("$TG" migrate status --json | python3 -c '
import json,sys; d=json.load(sys.stdin); t=d["targets"]
print(len(t), sum(1 for x in t if x["version"] == d["latest"] and not x["last_error"]))')
read -r targets at_latest <<<"$out"
[ "$targets" = "$at_latest" ] || { echo "only $at_latest of $targets targets reached the latest version" >&2; exit 1; }

echo "== RLS point query vs hand-written WHERE (pgbench)" >&2
KEY=$("$TG" tenant show bench-pooled-1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
PW=$(python3 - "$BENCH_DIR/master.key" "$KEY" <<'PY'
import hmac, hashlib, sys
key = open(sys.argv[1], 'rb').read().strip()
print(hmac.new(key, sys.argv[2].encode(), hashlib.sha256).hexdigest())
PY
)
psql -X -q "${URL}tg_pool" <<SQL
DROP TABLE IF EXISTS app.bench_points, app.bench_points_norls;
CREATE TABLE app.bench_points (
  tenant_id text COLLATE "C" NOT NULL DEFAULT tenantgate.current_tenant(),
  id integer NOT NULL, payload text NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO app.bench_points SELECT k, i, md5(k || i) FROM generate_series(1, 20000) i,
  (SELECT rolname::text AS k FROM pg_roles WHERE rolname ~ '^t[0-9a-f]{12}$' LIMIT 20) r;
INSERT INTO app.bench_points SELECT '$KEY', i, md5(i::text) FROM generate_series(1, 20000) i ON CONFLICT DO NOTHING;
CREATE TABLE app.bench_points_norls (LIKE app.bench_points INCLUDING ALL);
INSERT INTO app.bench_points_norls SELECT * FROM app.bench_points;
ALTER TABLE app.bench_points ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
-- The product's own policy, copied from a table tenantgate secured, so the two never drift.
DO \$\$ DECLARE q text; c text; BEGIN
  SELECT qual, with_check INTO STRICT q, c FROM pg_policies
   WHERE schemaname = 'app' AND tablename = 'orders' AND policyname = 'tenant_isolation';
  EXECUTE format('CREATE POLICY tenant_isolation ON app.bench_points USING (%s) WITH CHECK (%s)', q, c);
END \$\$;
GRANT SELECT ON app.bench_points, app.bench_points_norls TO tg_pool_rw;
ANALYZE app.bench_points; ANALYZE app.bench_points_norls;
SQL
HOSTPORT=$(python3 -c "import urllib.parse,sys; u=urllib.parse.urlparse(sys.argv[1]); print(u.hostname, u.port)" "$URL")
read -r HOST PORT <<<"$HOSTPORT"
printf '\\set id random(1, 20000)\nSELECT payload FROM bench_points WHERE id = :id;\n' > "$BENCH_DIR/rls.sql"
printf "\\\\set id random(1, 20000)\nSELECT payload FROM bench_points_norls WHERE tenant_id = '%s' AND id = :id;\n" "$KEY" > "$BENCH_DIR/where.sql"
run_pgbench() {
  local tps
  tps=$(PGPASSWORD="$PW" pgbench -n -h "$HOST" -p "$PORT" -U "$KEY" -c 4 -j 2 -T "${PGBENCH_SECONDS:-5}" -M prepared -f "$1" tg_pool 2>"$BENCH_DIR/pgbench.err" \
    | awk '/^tps/ {printf "%.0f", $3; exit}')
  [ -n "$tps" ] || { echo "pgbench failed on $1:" >&2; cat "$BENCH_DIR/pgbench.err" >&2; exit 1; }
  echo "$tps"
}
# Alternate the two, in several short rounds, to spread machine noise over both. The
# headline is the median of the per-round ratios: one disturbed run (e.g. a concurrent
# build) moves it much less than it moves a ratio of sums.
ROUNDS=${PGBENCH_ROUNDS:-10}
RLS=(); WHERE=()
for r in $(seq 1 "$ROUNDS"); do
  RLS+=("$(run_pgbench "$BENCH_DIR/rls.sql")"); WHERE+=("$(run_pgbench "$BENCH_DIR/where.sql")")
done
read -r ratio ratio_sum <<<"$(python3 -c "
import statistics, sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split()))
print(f'{statistics.median(x / y for x, y in zip(a, b)) * 100:.1f} {sum(a) / sum(b) * 100:.1f}')" "${RLS[*]}" "${WHERE[*]}")"
# Server-side time per query, without network or pgbench: a PL/pgSQL loop in one
# backend, alternating. The third variant is the RLS predicate written by hand on the
# table without RLS, which separates the cost of RLS itself from that of evaluating
# the policy's expression.
policy_expr=$(psql -X -At "${URL}tg_pool" -c "SELECT qual FROM pg_policies WHERE schemaname = 'app' AND tablename = 'bench_points'")
read -r us_rls us_where us_expr <<<"$(PGPASSWORD="$PW" psql -X -q -h "$HOST" -p "$PORT" -U "$KEY" tg_pool 2>&1 >/dev/null <<SQL | sed -n 's/^NOTICE: *//p'
DO \$\$
DECLARE t0 timestamptz; p text; r int; t float8[] := array[0, 0, 0]; n int := 20000; rounds int := 5;
BEGIN
  FOR round IN 1..rounds LOOP
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP r := 1 + (i * 7919) % 20000; SELECT payload INTO p FROM bench_points WHERE id = r; END LOOP;
    t[1] := t[1] + extract(epoch FROM clock_timestamp() - t0);
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP r := 1 + (i * 7919) % 20000; SELECT payload INTO p FROM bench_points_norls WHERE tenant_id = '$KEY' AND id = r; END LOOP;
    t[2] := t[2] + extract(epoch FROM clock_timestamp() - t0);
    t0 := clock_timestamp();
    FOR i IN 1..n LOOP r := 1 + (i * 7919) % 20000; SELECT payload INTO p FROM bench_points_norls WHERE $policy_expr AND id = r; END LOOP;
    t[3] := t[3] + extract(epoch FROM clock_timestamp() - t0);
  END LOOP;
  RAISE NOTICE '% % %', round((t[1] / (n * rounds) * 1e6)::numeric, 2), round((t[2] / (n * rounds) * 1e6)::numeric, 2), round((t[3] / (n * rounds) * 1e6)::numeric, 2);
END \$\$;
SQL
)"
[ -n "$us_expr" ] || { echo "the server-side loop failed" >&2; exit 1; }
plan=$(PGPASSWORD="$PW" psql -X -At -h "$HOST" -p "$PORT" -U "$KEY" tg_pool -c "EXPLAIN SELECT payload FROM bench_points WHERE id = 42" | head -3 | tr '\n' ' ')

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
# verdict VALUE GOAL le|ge -> pass/FAIL
verdict() { python3 -c "import sys; v,g=float(sys.argv[1]),float(sys.argv[2]); ok = v <= g if sys.argv[3]=='le' else v >= g; print('pass' if ok else 'FAIL')" "$1" "$2" "$3"; }
row() { local out="|" c; for c in "$@"; do out+=" $c |"; done; echo "$out"; }

mkdir -p bench/results
OUT="bench/results/control_plane-$(date +%Y-%m-%d).md"
{
  echo "# Control-plane benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr); PostgreSQL $(psql -X -At "${URL}postgres" -c 'show server_version'); demo clusters (fsync on), same machine as the CLI; ${BUILD}. Load average at start ${LOAD_START}, at end ${LOAD_END}."
  echo
  echo "## Tenant creation ($CREATE_N per placement, on us-1)"
  echo
  echo "Server-side elapsed is \`elapsed_ms\` from \`tenant create --json\`; CLI wall time adds process start, config and catalog connection."
  echo
  echo "| placement | median ms | p95 ms | CLI wall median ms | goal | result |"
  echo "|---|---|---|---|---|---|"
  for p in pooled schema database; do
    case $p in pooled) g=50;; schema) g=300;; database) g=2000;; esac
    row "$p" "${MED[$p]}" "${P95[$p]}" "${WALL[$p]}" "≤ $g" "$(verdict "${MED[$p]}" $g le)"
  done
  echo
  echo "## migrate over $N schema tenants ($targets targets in all, \`--jobs $JOBS\`)"
  echo
  echo "| run | seconds | targets migrated | goal | result |"
  echo "|---|---|---|---|---|"
  echo "| nothing pending (median of 3: ${noop_runs[*]}) | $noop | 0 | ≤ 2 | $(verdict "$noop" 2 le) |"
  echo "| one \`ALTER TABLE orders ADD COLUMN\` pending | $pending | $pending_migrated | ≤ 60 | $(verdict "$pending" 60 le) |"
  echo
  echo "After the second run all $targets targets were at the latest version with no error. (Creating the $N tenants one CLI call at a time took ${create_all}s in all.)"
  echo
  echo "## RLS policy cost (pgbench, 4 clients, 2 threads, prepared, $ROUNDS × ${PGBENCH_SECONDS:-5}s each, alternating)"
  echo
  echo "Same tenant role, same data (20,000 rows for each of up to 21 pooled tenants), in \`tg_pool\`."
  echo
  hdr="| query |"; sep="|---|"
  for r in $(seq 1 "$ROUNDS"); do hdr+=" TPS run $r |"; sep+="---|"; done
  echo "$hdr"; echo "$sep"
  row "through RLS: \`WHERE id = :id\`" "${RLS[@]}"
  row "no RLS, hand-written: \`WHERE tenant_id = '…' AND id = :id\`" "${WHERE[@]}"
  row "ratio RLS / hand-written" $(python3 -c "import sys; a=sys.argv[1].split(); b=sys.argv[2].split(); print(' '.join(f'{int(x)/int(y)*100:.1f}%' for x, y in zip(a, b)))" "${RLS[*]}" "${WHERE[*]}")
  echo
  echo "RLS / hand-written ratio, median of the per-round ratios: **${ratio}%** (goal ≥ 95%): $(verdict "$ratio" 95 ge). Ratio of the summed TPS: ${ratio_sum}%."
  echo
  echo "Plan through RLS: \`$plan\`"
  echo
  echo "Server-side time per query (PL/pgSQL loop in one backend, 5 × 20,000 each, alternating; no network, no pgbench):"
  echo
  echo "| query | µs per query |"
  echo "|---|---|"
  row "through RLS: \`WHERE id = r\`" "$us_rls"
  row "no RLS, hand-written literal: \`WHERE tenant_id = '…' AND id = r\`" "$us_where"
  row "no RLS, the policy's expression by hand: \`WHERE $policy_expr AND id = r\`" "$us_expr"
} > "$OUT"
cat "$OUT"
