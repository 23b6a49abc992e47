#!/usr/bin/env bash
# Data-rights benchmark (issue 20): how long restoring one tenant takes.
#
# 1. Export → import of one pooled tenant (ROWS orders on the example schema, on us-1 of
#    `tenantgate demo`) into a new tenant in a database on eu-1, against the baseline of
#    `pg_dump -Fc | pg_restore` of exactly the same rows between the same two clusters
#    (a scratch database holding only the tenant's rows, restored into a new database),
#    measured in the same round. ROUNDS rounds; reported: medians, the range, and the ratio
#    (export + import) / (dump + restore) as the geometric mean of the per-round ratios
#    with its 95% interval (bench/lib/stats.py). Where the time goes is recorded per round:
#    the export's checksum and copy parts, the import's steps (roles, schema, load, migrate,
#    activate) and the load's parts (clear, copy, references, verify, indexes,
#    foreign_keys, commit), from their --json output.
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
#   TG_BIN_BEFORE=path         also export + import with this build in every round (same
#                              rounds, same baseline): before/after a change in one run
#   PITR=0                     skip part 2
#   PARALLEL_PROBE=1           also measure, ROUNDS times with psql and zstd, what a parallel
#                              export could gain: the export's two reads of bench-src (every
#                              checksum, then the rows as COPY text compressed by zstd -3)
#                              one after the other, against both at once on two sessions with
#                              the rows spooled to a compressed file and appended after
#                              (an archive must start with its manifest, and so its checksums)
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
printf 'round\trows\tarchive_bytes\texport_ms\timport_ms\tbaseline_ms\tphases\tbefore_export_ms\tbefore_import_ms\tbefore_phases\n' > "$RAW"
if [ -n "${TG_BIN_BEFORE:-}" ]; then
  cp "$TG_BIN_BEFORE" "$BIN_DIR/tenantgate-before"
  TG_BEFORE="$BIN_DIR/tenantgate-before"
fi
# phases EXPORT_JSON IMPORT_JSON: where the time went, as name=ms pairs.
phases() {
  python3 - "$1" "$2" <<'PY'
import json, sys
e, i = (json.load(open(f)) for f in sys.argv[1:3])
out = [f"export.{k[:-3]}={e[k]}" for k in ("checksum_ms", "copy_ms") if k in e]
out += [f"import.{s['step']}={s['ms']}" for s in i["plan"].get("steps", [])]
out += [f"load.{s['step']}={s['ms']}" for s in i["plan"].get("load_phases", [])]
print(",".join(out))
PY
}
# export_import BIN SLUG ARCHIVE: export bench-src with BIN and import it as SLUG into a
# database on eu-1; sets EXPORT_MS, IMPORT_MS and PHASES.
export_import() {
  local t0
  t0=$(date +%s%N)
  "$1" tenant export bench-src --out "$3" --json > "$BENCH_DIR/export.json" 2>"$BENCH_DIR/export.err"
  EXPORT_MS=$(ms_since "$t0")
  t0=$(date +%s%N)
  "$1" tenant import "$2" --from "$3" --placement database --server eu-1 --json > "$BENCH_DIR/import.json" 2>"$BENCH_DIR/import.err"
  IMPORT_MS=$(ms_since "$t0")
  local n; n=$(psql_q "$(url_db "$EU_ADMIN" "$(key_of "$2")")" -c "SELECT count(*) FROM app.orders")
  [ "$n" = "$ROWS" ] || { echo "import as $2 gave $n of $ROWS orders" >&2; exit 1; }
  PHASES=$(phases "$BENCH_DIR/export.json" "$BENCH_DIR/import.json")
  "$TG" tenant erase "$2" --confirm "$2" > /dev/null
}

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
  b_export=""; b_import=""; b_phases=""
  if [ -n "${TG_BEFORE:-}" ]; then
    export_import "$TG_BEFORE" "bench-b$round" "$archive"
    b_export=$EXPORT_MS; b_import=$IMPORT_MS; b_phases=$PHASES
    printf 'round=%s before: export=%sms import=%sms (%s)\n' "$round" "$b_export" "$b_import" "$b_phases" >&2
    rm -f "$archive"
  fi
  export_import "$TG" "bench-r$round" "$archive"
  bytes=$(stat -c %s "$archive")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$ROWS" "$bytes" "$EXPORT_MS" "$IMPORT_MS" "$baseline_ms" \
    "$PHASES" "$b_export" "$b_import" "$b_phases" >> "$RAW"
  printf 'round=%s export=%sms import=%sms pg_dump|pg_restore=%sms archive=%s bytes (%s)\n' "$round" "$EXPORT_MS" "$IMPORT_MS" "$baseline_ms" "$bytes" "$PHASES" >&2
  rm -f "$archive"
  psql_q "$EU_ADMIN" -c "DROP DATABASE IF EXISTS bench_restore"
done
psql_q "$US_ADMIN" -c "DROP DATABASE IF EXISTS bench_scratch"

PROBE_RAW="$BENCH_DIR/probe.tsv"
printf 'round\tchecksum_ms\tcopy_ms\tsequential_ms\tconcurrent_ms\n' > "$PROBE_RAW"
if [ "${PARALLEL_PROBE:-0}" != 0 ]; then
  echo "== parallel export probe" >&2
  cols=$(psql_q "$POOL" -c "SELECT string_agg('t.' || quote_ident(column_name), ', ' ORDER BY ordinal_position) FROM information_schema.columns \
                              WHERE table_schema = 'app' AND table_name = 'orders' AND column_name <> 'tenant_id'")
  sum_sql="SELECT count(*), coalesce(sum(hash_record_extended(ROW($cols), 0)::numeric), 0)::text FROM app.orders t WHERE tenant_id = '$src_key'"
  copy_sql="COPY (SELECT * FROM app.orders WHERE tenant_id = '$src_key') TO STDOUT"
  for round in $(seq 1 "$ROUNDS"); do
    t0=$(date +%s%N); psql_q "$POOL" -c "$sum_sql" > /dev/null; sum_ms=$(ms_since "$t0")
    t0=$(date +%s%N); psql_q "$POOL" -c "$copy_sql" | zstd -q -3 > "$BENCH_DIR/probe.out"; copy_ms=$(ms_since "$t0")
    t0=$(date +%s%N)
    psql_q "$POOL" -c "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" -c "$sum_sql" -c "$copy_sql" -c "COMMIT" | zstd -q -3 > "$BENCH_DIR/probe.out"
    seq_ms=$(ms_since "$t0")
    t0=$(date +%s%N)
    psql_q "$POOL" -c "$sum_sql" > /dev/null &
    psql_q "$POOL" -c "$copy_sql" | zstd -q -3 > "$BENCH_DIR/probe.spool"
    wait
    cat "$BENCH_DIR/probe.spool" > "$BENCH_DIR/probe.out"
    par_ms=$(ms_since "$t0")
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$sum_ms" "$copy_ms" "$seq_ms" "$par_ms" >> "$PROBE_RAW"
    printf 'probe round=%s checksums=%sms rows=%sms one after the other=%sms at once=%sms\n' "$round" "$sum_ms" "$copy_ms" "$seq_ms" "$par_ms" >&2
  done
  rm -f "$BENCH_DIR/probe.out" "$BENCH_DIR/probe.spool"
fi

got=0; pool_rows=0; pitr_ms=0; backup_ms=0
if [ "${PITR:-1}" != 0 ]; then
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
fi

mkdir -p bench/results
MACHINE=$(dp_machine)
python3 - "$RAW" "bench/results/$OUT_NAME.md" "bench/results/restore-benchmark.json" "$MACHINE" \
  "$got" "$pool_rows" "$pitr_ms" "$backup_ms" "$(dp_load)" "${PITR:-1}" "$PROBE_RAW" <<'PY'
import csv, json, statistics, sys, datetime
sys.path.insert(0, "bench/lib")
from stats import geo_ci, against_goal
raw, md, js, machine, pitr_rows, pool_rows, pitr_ms, backup_ms, load, pitr, probe_raw = sys.argv[1:12]
rs = list(csv.DictReader(open(raw), delimiter="\t"))
bl = [int(r["baseline_ms"]) for r in rs]
med = lambda v: statistics.median(v)
rows = int(rs[0]["rows"])
GOAL = 1.5

def summary(label, ex, im):
    tot = [e + i for e, i in zip(ex, im)]
    ratios = [t / max(1, b) for t, b in zip(tot, bl)]
    gm = statistics.geometric_mean(ratios)
    ci = geo_ci(ratios)
    ci_text = f"[{ci[0]:.2f}–{ci[1]:.2f}]" if ci else "(fewer than 3 rounds: no interval)"
    line = (f"| {label} | {rows:,} | {len(rs)} | {med(ex):,.0f} ms ({min(ex):,}–{max(ex):,}) | {med(im):,.0f} ms ({min(im):,}–{max(im):,}) | "
            f"{med(tot):,.0f} ms | {med(bl):,.0f} ms ({min(bl):,}–{max(bl):,}) | {gm:.2f}× {ci_text} | {against_goal(ci, GOAL, at_most=True)} |")
    return line, gm, ci

def phase_medians(col):
    per = {}
    for r in rs:
        for kv in filter(None, (r.get(col) or "").split(",")):
            k, v = kv.split("=")
            per.setdefault(k, []).append(int(v))
    return {k: med(v) for k, v in per.items()}

ex = [int(r["export_ms"]) for r in rs]; im = [int(r["import_ms"]) for r in rs]
line, gm, ci = summary("this build", ex, im)
lines = [line]
before = all(r.get("before_export_ms") for r in rs)
if before:
    bex = [int(r["before_export_ms"]) for r in rs]; bim = [int(r["before_import_ms"]) for r in rs]
    lines.append(summary("before (TG_BIN_BEFORE)", bex, bim)[0])
out = [f"# Restoring one tenant: export → import against pg_dump | pg_restore, and a point-in-time restore, {datetime.date.today()}", "",
       f"Machine: {machine}", "", f"Load at the end of the run: {load}", "",
       "| build | orders | rounds | export (median, range) | import into a database on eu-1 (median, range) | export + import (median) | pg_dump \\| pg_restore (median, range) | (export + import) / (dump + restore): geometric mean [95% interval] | goal ≤ 1.5× |",
       "|---|---:|---:|---|---|---|---|---|---|", *lines, "",
       "Where the time went (median ms per round; export: checksums, then rows; import: its steps; load: the parts of the load step):", ""]
for label, col in [("this build", "phases"), ("before", "before_phases")]:
    pm = phase_medians(col)
    if pm:
        out.append(f"- {label}: " + ", ".join(f"{k} {v:,.0f}" for k, v in pm.items()))
out.append("")
probe = list(csv.DictReader(open(probe_raw), delimiter="\t"))
if probe:
    col = lambda k: [int(r[k]) for r in probe]
    gain = [int(r["concurrent_ms"]) / max(1, int(r["sequential_ms"])) for r in probe]
    pci = geo_ci(gain)
    out += [f"Parallel export probe (PARALLEL_PROBE=1, psql and zstd -3, {len(probe)} rounds, median ms): checksums alone {med(col('checksum_ms')):,.0f}, "
            f"rows alone {med(col('copy_ms')):,.0f}; one after the other in one snapshot {med(col('sequential_ms')):,.0f}, "
            f"at once (rows spooled, then appended) {med(col('concurrent_ms')):,.0f}: "
            f"{statistics.geometric_mean(gain):.2f}× of one after the other" + (f" [{pci[0]:.2f}–{pci[1]:.2f}]" if pci else "") + ".", "",
            "```", open(probe_raw).read().rstrip(), "```", ""]
if pitr != "0":
    out += [f"Point-in-time restore (`tenant restore --at T --as NEW`, one run): {int(pitr_rows):,} orders of a pooled tenant in a pool of "
            f"{int(pool_rows):,} orders: **{int(pitr_ms):,} ms** (the full `backup run` before it: {int(backup_ms):,} ms).", ""]
else:
    out += ["Point-in-time restore: not run (PITR=0); bench/results/restore-benchmark.json not rewritten.", ""]
out += ["Raw rounds:", "", "```", open(raw).read().rstrip(), "```", ""]
open(md, "w").write("\n".join(out))
if pitr != "0":
    json.dump({"format": "tenantgate-restore-bench/1", "measured_on": str(datetime.date.today()), "environment": machine,
               "export_import": {"placement_from": "pooled", "placement_to": "database", "rows": rows,
                                 "archive_bytes": int(rs[0]["archive_bytes"]), "rounds": len(rs),
                                 "export_ms": ex, "import_ms": im, "baseline_ms": bl,
                                 "ratio": round(gm, 3), "ratio_interval": [round(ci[0], 3), round(ci[1], 3)] if ci else None,
                                 "phases_median_ms": phase_medians("phases")},
               "point_in_time": {"placement": "pooled", "tenant_rows": int(pitr_rows), "pool_rows": int(pool_rows),
                                 "duration_ms": int(pitr_ms), "backup_ms": int(backup_ms)}},
              open(js, "w"), indent=2)
print("\n".join(out))
PY
