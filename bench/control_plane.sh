#!/usr/bin/env bash
# Control-plane benchmark (issue: control plane foundation).
#
#   1. tenant creation time per placement (server-side elapsed, from `tenant create --json`);
#   2. `tenantgate migrate` over 1,000 schema tenants: nothing pending, then one
#      `ALTER TABLE ... ADD COLUMN` pending;
#   3. the RLS policy's cost: pgbench point queries as a tenant role through RLS, against
#      the same query with a hand-written `WHERE tenant_id = ...` on an identical table
#      without RLS, same role, same run. Reported as a ratio.
#
# Usage: bench/control_plane.sh [N_SCHEMA_TENANTS]   (default 1000)
# Writes bench/results/control_plane-<date>.md and prints it. Uses its own demo
# deployment under $BENCH_DIR (default /tmp/tg-bench), so it never touches ./.tenantgate.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
BENCH_DIR=${BENCH_DIR:-/tmp/tg-bench}
CREATE_N=${CREATE_N:-20}
cargo build -q -p tenantgate
TG="$PWD/target/debug/tenantgate"

"$TG" demo --dir "$BENCH_DIR" --reset >/dev/null
export TENANTGATE_CONFIG="$BENCH_DIR/tenantgate.toml"
URL=$(sed -n 's/^url = "\(postgres:.*\/\)postgres"$/\1/p' "$TENANTGATE_CONFIG" | head -1)  # us-1 admin URL prefix

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p95() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.95); if (i<1) i=1; print a[i]}'; }

echo "== tenant creation ($CREATE_N per placement)" >&2
declare -A MED P95
for placement in pooled schema database; do
  : > "$BENCH_DIR/create-$placement.txt"
  for i in $(seq 1 "$CREATE_N"); do
    "$TG" tenant create "bench-$placement-$i" --placement "$placement" --server us-1 --json \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["elapsed_ms"])' >> "$BENCH_DIR/create-$placement.txt"
  done
  MED[$placement]=$(median < "$BENCH_DIR/create-$placement.txt")
  P95[$placement]=$(p95 < "$BENCH_DIR/create-$placement.txt")
done

echo "== creating $N schema tenants" >&2
start=$(date +%s)
for i in $(seq 1 "$N"); do
  "$TG" tenant create "mig-$i" --placement schema --server us-1 >/dev/null
done
create_all=$(( $(date +%s) - start ))

echo "== migrate, nothing pending" >&2
t0=$(date +%s.%N); "$TG" migrate --jobs 4 >/dev/null; t1=$(date +%s.%N)
noop=$(python3 -c "print(f'{$t1-$t0:.2f}')")

echo "== migrate, one ADD COLUMN pending" >&2
MIGDIR="$BENCH_DIR/restaurant/migrations"
echo "ALTER TABLE orders ADD COLUMN bench_note text;" > "$MIGDIR/0099_bench_note.sql"
t0=$(date +%s.%N); "$TG" migrate --jobs 4 >/dev/null; t1=$(date +%s.%N)
pending=$(python3 -c "print(f'{$t1-$t0:.2f}')")
targets=$("$TG" migrate status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["targets"]))')

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
CREATE POLICY tenant_isolation ON app.bench_points USING (tenant_id = left(session_user::text, 13)) WITH CHECK (tenant_id = left(session_user::text, 13));
GRANT SELECT ON app.bench_points, app.bench_points_norls TO tg_pool_rw;
ANALYZE app.bench_points; ANALYZE app.bench_points_norls;
SQL
HOSTPORT=$(python3 -c "import urllib.parse,sys; u=urllib.parse.urlparse(sys.argv[1]); print(u.hostname, u.port)" "$URL")
read -r HOST PORT <<<"$HOSTPORT"
printf '\\set id random(1, 20000)\nSELECT payload FROM bench_points WHERE id = :id;\n' > "$BENCH_DIR/rls.sql"
printf "\\\\set id random(1, 20000)\nSELECT payload FROM bench_points_norls WHERE tenant_id = '%s' AND id = :id;\n" "$KEY" > "$BENCH_DIR/where.sql"
run_pgbench() { PGPASSWORD="$PW" pgbench -n -h "$HOST" -p "$PORT" -U "$KEY" -c 4 -j 2 -T "${PGBENCH_SECONDS:-15}" -M prepared -f "$1" tg_pool 2>/dev/null | awk '/^tps/ {print $3; exit}'; }
# Alternate the two to spread machine noise over both.
rls1=$(run_pgbench "$BENCH_DIR/rls.sql"); where1=$(run_pgbench "$BENCH_DIR/where.sql")
rls2=$(run_pgbench "$BENCH_DIR/rls.sql"); where2=$(run_pgbench "$BENCH_DIR/where.sql")
ratio=$(python3 -c "print(f'{($rls1+$rls2)/($where1+$where2)*100:.1f}')")
plan=$(PGPASSWORD="$PW" psql -X -At -h "$HOST" -p "$PORT" -U "$KEY" tg_pool -c "EXPLAIN SELECT payload FROM bench_points WHERE id = 42" | head -3 | tr '\n' ' ')

mkdir -p bench/results
OUT="bench/results/control_plane-$(date +%Y-%m-%d).md"
{
  echo "# Control-plane benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr); PostgreSQL $(psql -X -At "${URL}postgres" -c 'show server_version'); demo cluster (fsync on); debug build of tenantgate."
  echo
  echo "## Tenant creation (server-side elapsed per tenant, $CREATE_N each)"
  echo
  echo "| placement | median ms | p95 ms | goal |"
  echo "|---|---|---|---|"
  echo "| pooled | ${MED[pooled]} | ${P95[pooled]} | ≤ 50 |"
  echo "| schema | ${MED[schema]} | ${P95[schema]} | ≤ 300 |"
  echo "| database | ${MED[database]} | ${P95[database]} | ≤ 2000 |"
  echo
  echo "## migrate over $N schema tenants ($targets targets in all)"
  echo
  echo "| run | seconds | goal |"
  echo "|---|---|---|"
  echo "| nothing pending | $noop | ≤ 2 |"
  echo "| one ADD COLUMN pending | $pending | ≤ 60 |"
  echo
  echo "(Creating the $N tenants through the CLI took ${create_all}s in all.)"
  echo
  echo "## RLS policy cost (pgbench, 4 clients, prepared, 2 × ${PGBENCH_SECONDS:-15}s each, alternating)"
  echo
  echo "| query | TPS run 1 | TPS run 2 |"
  echo "|---|---|---|"
  echo "| tenant role through RLS: \`WHERE id = :id\` | $rls1 | $rls2 |"
  echo "| same role, no RLS: \`WHERE tenant_id = '…' AND id = :id\` | $where1 | $where2 |"
  echo
  echo "RLS / hand-written ratio: **${ratio}%** (goal ≥ 95%)."
  echo
  echo "Plan through RLS: \`$plan\`"
} > "$OUT"
cat "$OUT"
