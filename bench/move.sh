#!/usr/bin/env bash
# Online-move benchmark (issue 16): a pooled tenant with N orders on the example schema moves
# to a database on another local cluster (us-1 → eu-1 of `tenantgate demo`) while a writer
# inserts orders through the gateway, against the baseline of a `pg_dump | pg_restore` of
# the same rows between the same two clusters, measured in the same round.
#
# Each round, per size: create a fresh pooled tenant, load N orders (as the admin, with
# generate_series), copy exactly its rows into a scratch database and time
# `pg_dump -Fc scratch | pg_restore` into a new database on eu-1 (the baseline), then start
# the writer (pgbench -C -R through the gateway: one insert per transaction, each on a new
# connection, as a reconnecting app) and time
# `tenantgate tenant move --to database --server eu-1`. Reported: the move's total time,
# its fence (writes held), the baseline, their ratio, the writer's rows found in the new
# placement and its errors (pgbench -C aborts a client on its first error).
#
# Usage: bench/move.sh       (about 8 minutes with the defaults on 2 cores)
#   SIZES="10000 1000000"    orders per tenant
#   ROUNDS=3
#   WRITER_RATE=50           writer transactions per second during the move
#   TG_BIN=path              use a prebuilt binary instead of `cargo build --release`
#   OUT_NAME=name            results file name (default move-<date>)
# Writes bench/results/<OUT_NAME>.md and bench/results/move-benchmark.json (format
# tenantgate-move-bench/1, which `reports.move_benchmark` names for the questionnaire).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-move-bench}
SIZES=${SIZES:-"10000 1000000"}
ROUNDS=${ROUNDS:-3}
WRITER_RATE=${WRITER_RATE:-50}
OUT_NAME=${OUT_NAME:-move-$(date -u +%Y-%m-%d)}
DP_TENANTS=""
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
dp_serve on true "" 0
GW_PORT=$SERVE_PG_PORT_on
US_ADMIN=$(sed -n 's/^url = "\(postgres:.*\)"$/\1/p' "$TENANTGATE_CONFIG" | sed -n 2p)
EU_ADMIN=$(sed -n 's/^url = "\(postgres:.*\)"$/\1/p' "$TENANTGATE_CONFIG" | sed -n 3p)
url_db() { echo "${1%/*}/$2"; }
psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
psql_q "$US_ADMIN" -c 'select 1' >/dev/null && psql_q "$EU_ADMIN" -c 'select 1' >/dev/null

RAW="$BENCH_DIR/raw.tsv"
printf 'size\tround\tbytes\tmove_ms\tfence_ms\tbaseline_ms\twriter_rows\twriter_errors\tsteps_ms\n' > "$RAW"

cat > "$BENCH_DIR/writer.sql" <<'EOF'
INSERT INTO orders (branch_id, table_no, customer_name, total) VALUES ('b0000000-0000-4000-8000-000000000001', 1 + (random() * 40)::int, 'bench writer', 12.50);
EOF

for round in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    slug="mv-$size-r$round"
    echo "== round $round, $size orders ($slug)" >&2
    "$TG" tenant create "$slug" --placement pooled --server us-1 > /dev/null
    key=$("$TG" tenant show "$slug" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
    psql_q "$(url_db "$US_ADMIN" tg_pool)" <<EOF
INSERT INTO app.branches (tenant_id, branch_id, name, city, country)
  VALUES ('$key', 'b0000000-0000-4000-8000-000000000001', 'Bench branch', 'Benchville', 'US');
INSERT INTO app.orders (tenant_id, branch_id, placed_at, status, table_no, customer_name, total)
  SELECT '$key', 'b0000000-0000-4000-8000-000000000001', now() - k * interval '1 minute',
         (ARRAY['open','paid','cancelled'])[1 + k % 3], 1 + k % 40, 'Guest ' || k, (k % 500) * 0.25
  FROM generate_series(1, $size) k;
VACUUM ANALYZE app.orders;
EOF
    bytes=$(psql_q "$(url_db "$US_ADMIN" tg_pool)" -c "SELECT sum(pg_column_size(o.*)) FROM app.orders o WHERE tenant_id = '$key'")

    # Baseline: the same rows, dumped from a scratch copy and restored on eu-1.
    psql_q "$US_ADMIN" -c "DROP DATABASE IF EXISTS bench_scratch" -c "CREATE DATABASE bench_scratch"
    psql_q "$EU_ADMIN" -c "DROP DATABASE IF EXISTS bench_restore" -c "CREATE DATABASE bench_restore"
    psql_q "$(url_db "$US_ADMIN" tg_pool)" -c "\copy (SELECT * FROM app.branches WHERE tenant_id = '$key') TO '$BENCH_DIR/branches.copy'" \
      -c "\copy (SELECT * FROM app.orders WHERE tenant_id = '$key') TO '$BENCH_DIR/orders.copy'"
    pg_dump -s -n app -t app.branches -t app.orders "$(url_db "$US_ADMIN" tg_pool)" \
      | grep -v -E '^(GRANT|REVOKE)|OWNER TO' | sed 's/DEFAULT tenantgate.current_tenant()//' > "$BENCH_DIR/schema.sql"
    psql_q "$(url_db "$US_ADMIN" bench_scratch)" -c "CREATE SCHEMA app" -f "$BENCH_DIR/schema.sql" > /dev/null
    psql_q "$(url_db "$US_ADMIN" bench_scratch)" -c "\copy app.branches FROM '$BENCH_DIR/branches.copy'" -c "\copy app.orders FROM '$BENCH_DIR/orders.copy'"
    t0=$(date +%s%N)
    pg_dump -Fc "$(url_db "$US_ADMIN" bench_scratch)" | pg_restore -O -x -d "$(url_db "$EU_ADMIN" bench_restore)"
    t1=$(date +%s%N)
    baseline_ms=$(( (t1 - t0) / 1000000 ))
    restored=$(psql_q "$(url_db "$EU_ADMIN" bench_restore)" -c "SELECT count(*) FROM app.orders")
    [ "$restored" = "$size" ] || { echo "baseline restored $restored of $size orders" >&2; exit 1; }

    # The move, with a writer through the gateway.
    secret=$("$TG" key create "$slug" --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
    PGPASSWORD="$secret" pgbench -n -h 127.0.0.1 -p "$GW_PORT" -U "$slug" -C -c 1 -R "$WRITER_RATE" -T 600 \
      -f "$BENCH_DIR/writer.sql" app > "$BENCH_DIR/writer-$slug.out" 2>&1 &
    WRITER=$!
    sleep 2
    "$TG" tenant move "$slug" --to database --server eu-1 --json > "$BENCH_DIR/move-$slug.json"
    sleep 2
    # (A background job of a script ignores SIGINT; pgbench ends on SIGTERM without a report,
    # so the writer's work is counted in the tenant's rows below.)
    kill -TERM "$WRITER" 2>/dev/null || true
    wait "$WRITER" 2>/dev/null || true
    read -r move_ms fence_ms steps < <(python3 - "$BENCH_DIR/move-$slug.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
assert v["state"] == "done", v
print(sum(s["ms"] for s in v["plan"]["steps"]), v["plan"]["fence_ms"], ",".join(f"{s['step']}={s['ms']}" for s in v["plan"]["steps"]))
PY
    )
    # The writer's rows, read as the tenant in its new placement: every one it committed.
    wtx=$(PGPASSWORD="$secret" psql -X -At -h 127.0.0.1 -p "$GW_PORT" -U "$slug" app -c "SELECT count(*) FROM orders WHERE customer_name = 'bench writer'")
    wfail=$(grep -c -E 'ERROR|FATAL|server closed|aborted' "$BENCH_DIR/writer-$slug.out" || true)
    werr=$(grep -m1 -E 'ERROR|FATAL|server closed' "$BENCH_DIR/writer-$slug.out" | tr '\t' ' ' | cut -c1-160 || true)
    [ -n "$werr" ] && echo "writer: $werr" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$round" "$bytes" "$move_ms" "$fence_ms" "$baseline_ms" "${wtx:-?}" "$wfail" "$steps" >> "$RAW"
    printf 'size=%s round=%s move=%sms fence=%sms pg_dump|pg_restore=%sms writer rows=%s errors=%s steps: %s\n' \
      "$size" "$round" "$move_ms" "$fence_ms" "$baseline_ms" "${wtx:-?}" "$wfail" "$steps" >&2
    "$TG" tenant erase "$slug" --confirm "$slug" > /dev/null
    psql_q "$EU_ADMIN" -c "DROP DATABASE IF EXISTS bench_restore"
    psql_q "$US_ADMIN" -c "DROP DATABASE IF EXISTS bench_scratch"
  done
done

mkdir -p bench/results
MACHINE=$(dp_machine)
python3 - "$RAW" "bench/results/$OUT_NAME.md" "bench/results/move-benchmark.json" "$MACHINE" <<'PY'
import csv, json, statistics, sys, datetime
raw, md, js, machine = sys.argv[1:5]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(int(r["size"]), []).append(r)
out = [f"# Online move: pooled (us-1) → database (eu-1), {datetime.date.today()}", "", f"Machine: {machine}", "",
       "| orders | rounds | move, total (median, range) | of which cut-over, before cleaning the source (median) | fence (median, max) | pg_dump \\| pg_restore (median) | move / dump+restore (median of per-round ratios, range) | writer errors |",
       "|---:|---:|---|---|---|---|---|---:|"]
runs = []
for size in sorted(by):
    rs = by[size]
    mv = [int(r["move_ms"]) for r in rs]; fe = [int(r["fence_ms"]) for r in rs]; bl = [int(r["baseline_ms"]) for r in rs]
    ratios = [int(r["move_ms"]) / max(1, int(r["baseline_ms"])) for r in rs]
    errs = sum(int(r["writer_errors"]) for r in rs)
    cut = [sum(int(kv.split("=")[1]) for kv in r["steps_ms"].split(",") if not kv.startswith("clean=")) for r in rs]
    out.append(f"| {size:,} | {len(rs)} | {statistics.median(mv):,.0f} ms ({min(mv):,}–{max(mv):,}) | {statistics.median(cut):,.0f} ms | {statistics.median(fe):,.0f} ms (max {max(fe):,}) | "
               f"{statistics.median(bl):,.0f} ms | {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) | {errs} |")
    for r in rs:
        runs.append({"from": "pooled", "to": "database", "tenant_bytes": int(r["bytes"]), "rows": size,
                     "duration_ms": int(r["move_ms"]), "fence_ms": int(r["fence_ms"])})
out += ["", "Raw rounds:", "", "```", open(raw).read().rstrip(), "```", ""]
open(md, "w").write("\n".join(out))
json.dump({"format": "tenantgate-move-bench/1", "measured_on": str(datetime.date.today()), "environment": machine, "runs": runs},
          open(js, "w"), indent=2)
print("\n".join(out))
PY
