#!/usr/bin/env bash
# Data-rights benchmark (issue 20): how long restoring one tenant takes.
#
# 1. Export → import of one pooled tenant (ROWS orders on the example schema, on us-1 of
#    `tenantgate demo`) into a new tenant in a database on eu-1, against the baseline of
#    `pg_dump -Fc | pg_restore` of exactly the same rows between the same two clusters
#    (a scratch database holding only the tenant's rows, restored into a new database),
#    measured in the same round. ROUNDS rounds; reported: medians, the range, and the ratio
#    (export + import) / (dump + restore) as the geometric mean of the per-round ratios
#    with its 95% interval (bench/lib/stats.py).
# 2. One point-in-time restore: a pooled tenant of PITR_ROWS orders in a pool of POOL_ROWS
#    orders in all; a full `tenantgate backup run`, then more writes, then
#    `tenantgate tenant restore SLUG --at T --as NEW` (scratch cluster recovered to T, the
#    tenant's rows extracted and imported, scratch removed); checked to give exactly the
#    rows of T.
#
# Usage: bench/restore.sh      (about 3 minutes with the defaults on 2 cores)
#   ROWS=100000                orders of the exported tenant
#   PITR_ROWS=10000            orders of the restored tenant
#   POOL_ROWS=200000           orders in the pool in all at the restore (ROWS included)
#   ROUNDS=3
#   TG_BIN=path                use a prebuilt binary instead of `cargo build --release`
#   OUT_NAME=name              results file name (default restore-<date>)
# Writes bench/results/<OUT_NAME>.md and bench/results/restore-benchmark.json (format
# tenantgate-restore-bench/1, which `reports.restore_benchmark` names for the questionnaire).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-restore-bench}
ROWS=${ROWS:-100000}
PITR_ROWS=${PITR_ROWS:-10000}
POOL_ROWS=${POOL_ROWS:-200000}
ROUNDS=${ROUNDS:-3}
OUT_NAME=${OUT_NAME:-restore-$(date -u +%Y-%m-%d)}
DP_TENANTS=""
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
US_ADMIN=$(sed -n 's/^url = "\(postgres:.*\)"$/\1/p' "$TENANTGATE_CONFIG" | sed -n 2p)
EU_ADMIN=$(sed -n 's/^url = "\(postgres:.*\)"$/\1/p' "$TENANTGATE_CONFIG" | sed -n 3p)
url_db() { echo "${1%/*}/$2"; }
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
POOL=$(url_db "$US_ADMIN" tg_pool)
psql_q "$US_ADMIN" -c 'select 1' >/dev/null && psql_q "$EU_ADMIN" -c 'select 1' >/dev/null
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
key_of() { "$TG" tenant show "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }

# load SLUG N FIRST: N orders numbered from FIRST for the pooled tenant SLUG, as the admin.
load() {
  local key; key=$(key_of "$1")
  psql_q "$POOL" <<EOF
INSERT INTO app.branches (tenant_id, branch_id, name, city, country)
  VALUES ('$key', 'b0000000-0000-4000-8000-000000000001', 'Bench branch', 'Benchville', 'US')
  ON CONFLICT DO NOTHING;
INSERT INTO app.orders (tenant_id, branch_id, placed_at, status, table_no, customer_name, total)
  SELECT '$key', 'b0000000-0000-4000-8000-000000000001', now() - k * interval '1 minute',
         (ARRAY['open','paid','cancelled'])[1 + k % 3], 1 + k % 40, 'Guest ' || k, (k % 500) * 0.25
  FROM generate_series($3, $3 + $2 - 1) k;
EOF
}
orders_of() { psql_q "$POOL" -c "SELECT count(*) FROM app.orders WHERE tenant_id = '$(key_of "$1")'"; }

RAW="$BENCH_DIR/raw.tsv"
printf 'round\trows\tarchive_bytes\texport_ms\timport_ms\tbaseline_ms\n' > "$RAW"

"$TG" tenant create bench-src --placement pooled --server us-1 > /dev/null
load bench-src "$ROWS" 1
psql_q "$POOL" -c "VACUUM ANALYZE app.orders"
src_key=$(key_of bench-src)

# The baseline's source: a scratch database on us-1 holding exactly bench-src's rows.
psql_q "$US_ADMIN" -c "DROP DATABASE IF EXISTS bench_scratch" -c "CREATE DATABASE bench_scratch"
psql_q "$POOL" -c "\copy (SELECT * FROM app.branches WHERE tenant_id = '$src_key') TO '$BENCH_DIR/branches.copy'" \
  -c "\copy (SELECT * FROM app.orders WHERE tenant_id = '$src_key') TO '$BENCH_DIR/orders.copy'"
pg_dump -s -n app -t app.branches -t app.orders "$POOL" \
  | grep -v -E '^(GRANT|REVOKE)|OWNER TO' | sed 's/DEFAULT tenantgate.current_tenant()//' > "$BENCH_DIR/schema.sql"
psql_q "$(url_db "$US_ADMIN" bench_scratch)" -c "CREATE SCHEMA app" -f "$BENCH_DIR/schema.sql" > /dev/null
psql_q "$(url_db "$US_ADMIN" bench_scratch)" -c "\copy app.branches FROM '$BENCH_DIR/branches.copy'" -c "\copy app.orders FROM '$BENCH_DIR/orders.copy'"

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: $ROWS orders" >&2
  psql_q "$EU_ADMIN" -c "DROP DATABASE IF EXISTS bench_restore" -c "CREATE DATABASE bench_restore"
  t0=$(date +%s%N)
  pg_dump -Fc "$(url_db "$US_ADMIN" bench_scratch)" | pg_restore -O -x -d "$(url_db "$EU_ADMIN" bench_restore)"
  baseline_ms=$(ms_since "$t0")
  n=$(psql_q "$(url_db "$EU_ADMIN" bench_restore)" -c "SELECT count(*) FROM app.orders")
  [ "$n" = "$ROWS" ] || { echo "baseline restored $n of $ROWS orders" >&2; exit 1; }

  archive="$BENCH_DIR/bench-src-r$round.tar.zst"
  t0=$(date +%s%N)
  "$TG" tenant export bench-src --out "$archive" --json > /dev/null 2>"$BENCH_DIR/export.err"
  export_ms=$(ms_since "$t0")
  t0=$(date +%s%N)
  "$TG" tenant import "bench-r$round" --from "$archive" --placement database --server eu-1 --json > /dev/null 2>"$BENCH_DIR/import.err"
  import_ms=$(ms_since "$t0")
  n=$(psql_q "$(url_db "$EU_ADMIN" "$(key_of "bench-r$round")")" -c "SELECT count(*) FROM app.orders")
  [ "$n" = "$ROWS" ] || { echo "import gave $n of $ROWS orders" >&2; exit 1; }
  bytes=$(stat -c %s "$archive")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$ROWS" "$bytes" "$export_ms" "$import_ms" "$baseline_ms" >> "$RAW"
  printf 'round=%s export=%sms import=%sms pg_dump|pg_restore=%sms archive=%s bytes\n' "$round" "$export_ms" "$import_ms" "$baseline_ms" "$bytes" >&2
  "$TG" tenant erase "bench-r$round" --confirm "bench-r$round" > /dev/null
  rm -f "$archive"
  psql_q "$EU_ADMIN" -c "DROP DATABASE IF EXISTS bench_restore"
done
psql_q "$US_ADMIN" -c "DROP DATABASE IF EXISTS bench_scratch"

echo "== point-in-time restore: $PITR_ROWS of $POOL_ROWS pooled orders" >&2
"$TG" tenant create bench-pitr --placement pooled --server us-1 > /dev/null
load bench-pitr "$PITR_ROWS" 1
filler=$(( POOL_ROWS - ROWS - PITR_ROWS ))
[ "$filler" -gt 0 ] && load bench-src "$filler" $(( ROWS + 1 ))
psql_q "$POOL" -c "VACUUM ANALYZE app.orders"
t0=$(date +%s%N)
"$TG" backup run --server us-1 > /dev/null
backup_ms=$(ms_since "$t0")
load bench-pitr 100 $(( PITR_ROWS + 1 ))
sleep 1
AT=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 1
load bench-pitr 500 $(( PITR_ROWS + 101 ))
psql_q "$POOL" -c "DELETE FROM app.orders WHERE tenant_id = '$(key_of bench-pitr)' AND customer_name = 'Guest 1'"
pool_rows=$(psql_q "$POOL" -c "SELECT count(*) FROM app.orders")
t0=$(date +%s%N)
"$TG" tenant restore bench-pitr --at "$AT" --as bench-then --json > "$BENCH_DIR/restore.json"
pitr_ms=$(ms_since "$t0")
got=$(orders_of bench-then)
[ "$got" = $(( PITR_ROWS + 100 )) ] || { echo "restore --at gave $got orders, expected $(( PITR_ROWS + 100 ))" >&2; exit 1; }
echo "backup=${backup_ms}ms restore --at=${pitr_ms}ms ($got orders of a pool of $pool_rows)" >&2

mkdir -p bench/results
MACHINE=$(dp_machine)
python3 - "$RAW" "bench/results/$OUT_NAME.md" "bench/results/restore-benchmark.json" "$MACHINE" \
  "$got" "$pool_rows" "$pitr_ms" "$backup_ms" "$(dp_load)" <<'PY'
import csv, json, statistics, sys, datetime
sys.path.insert(0, "bench/lib")
from stats import geo_ci
raw, md, js, machine, pitr_rows, pool_rows, pitr_ms, backup_ms, load = sys.argv[1:10]
rs = list(csv.DictReader(open(raw), delimiter="\t"))
ex = [int(r["export_ms"]) for r in rs]; im = [int(r["import_ms"]) for r in rs]; bl = [int(r["baseline_ms"]) for r in rs]
tot = [e + i for e, i in zip(ex, im)]
ratios = [t / max(1, b) for t, b in zip(tot, bl)]
gm = statistics.geometric_mean(ratios)
ci = geo_ci(ratios)
ci_text = f"[{ci[0]:.2f}–{ci[1]:.2f}]" if ci else "(fewer than 3 rounds: no interval)"
med = lambda v: statistics.median(v)
rows = int(rs[0]["rows"])
out = [f"# Restoring one tenant: export → import against pg_dump | pg_restore, and a point-in-time restore, {datetime.date.today()}", "",
       f"Machine: {machine}", "", f"Load at the end of the run: {load}", "",
       "| orders | rounds | export (median, range) | import into a database on eu-1 (median, range) | export + import (median) | pg_dump \\| pg_restore (median, range) | (export + import) / (dump + restore): geometric mean [95% interval] |",
       "|---:|---:|---|---|---|---|---|",
       f"| {rows:,} | {len(rs)} | {med(ex):,.0f} ms ({min(ex):,}–{max(ex):,}) | {med(im):,.0f} ms ({min(im):,}–{max(im):,}) | {med(tot):,.0f} ms | "
       f"{med(bl):,.0f} ms ({min(bl):,}–{max(bl):,}) | {gm:.2f}× {ci_text} |", "",
       f"Point-in-time restore (`tenant restore --at T --as NEW`, one run): {int(pitr_rows):,} orders of a pooled tenant in a pool of "
       f"{int(pool_rows):,} orders: **{int(pitr_ms):,} ms** (the full `backup run` before it: {int(backup_ms):,} ms).", "",
       "Raw rounds:", "", "```", open(raw).read().rstrip(), "```", ""]
open(md, "w").write("\n".join(out))
json.dump({"format": "tenantgate-restore-bench/1", "measured_on": str(datetime.date.today()), "environment": machine,
           "export_import": {"placement_from": "pooled", "placement_to": "database", "rows": rows,
                             "archive_bytes": int(rs[0]["archive_bytes"]), "rounds": len(rs),
                             "export_ms": ex, "import_ms": im, "baseline_ms": bl,
                             "ratio": round(gm, 3), "ratio_interval": [round(ci[0], 3), round(ci[1], 3)] if ci else None},
           "point_in_time": {"placement": "pooled", "tenant_rows": int(pitr_rows), "pool_rows": int(pool_rows),
                             "duration_ms": int(pitr_ms), "backup_ms": int(backup_ms)}},
          open(js, "w"), indent=2)
print("\n".join(out))
PY
