#!/usr/bin/env bash
# schemathesis (PyPI) against the HTTP API's own /openapi.json (issue 4): property-based
# requests to every operation, checked against the schema. Two runs on one `tenantgate
# serve` (gate on) over the demo deployment:
#   tenant routes (everything but /admin/v1/) with `Authorization: Bearer tgk_…` of pasta-palace;
#   admin routes (/admin/v1/) with the admin token (`[http] admin_token_file`).
# Required (the script fails otherwise): no 5xx (not_a_server_error) and no schema
# violation (response_schema_conformance, status_code_conformance,
# content_type_conformance, response_headers_conformance). A third, informational run
# applies all of schemathesis's checks to the tenant routes and records what they say.
#
# Usage: bench/schemathesis.sh     (about 2–4 minutes)
#   MAX_EXAMPLES=50 (per operation)  SEED=1  TG_BIN=path
# Needs `pip install schemathesis` (4.x). Writes bench/results/schemathesis-<date>.md.
# Not part of `make test`: it takes minutes and depends on random generation.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/tg-st-bench}
MAX_EXAMPLES=${MAX_EXAMPLES:-50}
SEED=${SEED:-1}
SLUG=pasta-palace
DP_TENANTS=$SLUG
command -v st >/dev/null || { echo "schemathesis is missing: pip install schemathesis" >&2; exit 1; }
. bench/lib/dataplane.sh

echo "== setup" >&2
dp_setup
ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
( umask 077; echo "$ADMIN_TOKEN" > "$BENCH_DIR/demo/admin.token" )
dp_serve st true 'admin_token_file = "admin.token"'
V=$(dp_var "$SLUG"); KEYV=KEY_$V; KEY=${!KEYV}
BASE="http://127.0.0.1:$SERVE_HTTP_PORT_st"
SCHEMA="$BASE/openapi.json"
REQUIRED=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance
T0=$(date +%s)

# run_st NAME CHECKS AUTH-TOKEN FILTER...
run_st() {
  local name=$1 checks=$2 token=$3 rc=0; shift 3
  # From $BENCH_DIR: schemathesis and hypothesis keep caches (.schemathesis/, .hypothesis/)
  # in the working directory, which must not land in the repository.
  (cd "$BENCH_DIR" && st run "$SCHEMA" --checks "$checks" -H "Authorization: Bearer $token" --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" --no-color --workers 2 --report junit --report-junit-path "$BENCH_DIR/$name.xml" \
    "$@") > "$BENCH_DIR/$name.out" 2>&1 || rc=$?
  echo "$rc" > "$BENCH_DIR/$name.rc"
  echo "== $name: exit $rc" >&2
  tail -25 "$BENCH_DIR/$name.out" >&2
}
run_st tenant "$REQUIRED" "$KEY" --exclude-path-regex '^/admin/'
run_st admin "$REQUIRED" "$ADMIN_TOKEN" --include-path-regex '^/admin/'
run_st tenant-all-checks all "$KEY" --exclude-path-regex '^/admin/'
ELAPSED=$(( $(date +%s) - T0 ))
# Any 5xx the server logged, whatever schemathesis made of it.
ERRORS_LOGGED=$(grep -ciE 'panic|internal server error| 5[0-9][0-9] ' "$BENCH_DIR/serve-st.log" || true)

mkdir -p bench/results
OUT="bench/results/schemathesis-$(date +%Y-%m-%d).md"
python3 - "$BENCH_DIR" "$OUT" "$(st --version | head -1)" "$MAX_EXAMPLES" "$SEED" "$ELAPSED" "$ERRORS_LOGGED" "$(date -u +%Y-%m-%dT%H:%MZ)" "$BUILD" <<'PY'
import re, sys
d, out, version, n, seed, elapsed, logged, when, build = sys.argv[1:10]
md = [f"# schemathesis against /openapi.json (bench/schemathesis.sh), {when}", "",
      f"{version}; `--max-examples {n} --seed {seed} --workers 2`; {elapsed} s in all; {build}. "
      f"Serve log lines that look like a panic or a 5xx: {logged}.", ""]
for name, what in [("tenant", "tenant routes, API key; required checks"), ("admin", "admin routes, admin token; required checks"),
                   ("tenant-all-checks", "tenant routes, API key; all checks (informational)")]:
    text = open(f"{d}/{name}.out").read()
    rc = open(f"{d}/{name}.rc").read().strip()
    md += [f"## {what}: exit {rc}", "", "```"]
    # The summary is at the end of schemathesis's output; keep it and the failures' headings.
    lines = [l for l in text.splitlines() if l.strip()]
    md += lines[-60:] if len(lines) > 60 else lines
    md += ["```", ""]
open(out, "w").write("\n".join(md) + "\n")
PY
cat "$OUT"
for name in tenant admin; do
  [ "$(cat "$BENCH_DIR/$name.rc")" = 0 ] || { echo "schemathesis ($name) found problems: see $OUT" >&2; exit 1; }
done
