# Shared setup for the data-plane benchmarks (bench/gateway.sh, bench/http.sh,
# bench/schemathesis.sh). Source it from bash with `set -euo pipefail`.
#
#   dp_setup            build (or take $TG_BIN), copy the binary, `tenantgate demo --reset
#                       --no-serve` into $BENCH_DIR, load bench/pgbench/prepare.sql as each
#                       tenant in $DP_TENANTS, create one API key per tenant
#   dp_serve NAME GATE  start `tenantgate serve` with gate on/off on free ports
#                       (sets SERVE_PG_PORT_<NAME>, SERVE_HTTP_PORT_<NAME>); DP_POOL_MAX
#                       (pool_max_per_tenant, default 40) and DP_GATEWAY_EXTRA (more
#                       [gateway] lines) apply to the next dp_serve
#   dp_pgbouncer NAME MODE SLUG
#                       start PgBouncer (pool_mode MODE) for that tenant's database,
#                       authenticating as the tenant's own role (sets PGB_PORT_<NAME>);
#                       DP_PGB_POOL (default_pool_size, default 40), DP_PGB_MAX_CLIENTS (200)
#   dp_cleanup          (on EXIT) stops serve, PgBouncer, the demo clusters; removes $BENCH_DIR
#
# Per tenant slug S (with - replaced by _): DIRECT_HOST_S DIRECT_PORT_S DIRECT_USER_S
# DIRECT_DB_S DIRECT_PW_S (the tenant's read-write role and derived password) and
# KEY_S (a fresh tgk_ API key, read-write).
# Everything lives under $BENCH_DIR; ./.tenantgate is never touched.

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DP_TENANTS=${DP_TENANTS:-"pasta-palace brasserie-berlin"}
DP_PIDS=()

dp_var() { echo "${1//-/_}"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

dp_cleanup() {
  local rc=$?
  set +e
  local f
  for f in "${BENCH_DIR:-/nonexistent}"/pgbouncer-*/pgbouncer.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  for pid in "${DP_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${DP_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ -n "${TG:-}" ] && [ -d "${BENCH_DIR:-/nonexistent}/demo" ]; then
    "$TG" demo --dir "$BENCH_DIR/demo" --stop >/dev/null 2>&1
  fi
  case "${BENCH_DIR:-}" in /tmp/?*) [ -n "${KEEP_BENCH_DIR:-}" ] || rm -rf "$BENCH_DIR";; esac
  [ -n "${BIN_DIR:-}" ] && rm -rf "$BIN_DIR"
  return $rc
}

dp_setup() {
  case "$BENCH_DIR" in /tmp/?*) ;; *) echo "BENCH_DIR must be under /tmp (got $BENCH_DIR)" >&2; exit 2;; esac
  if [ -z "${TG_BIN:-}" ]; then
    (cd "$REPO" && cargo build -q --release -p tenantgate)
    TG_BIN="$REPO/target/release/tenantgate"
    BUILD="release build of tenantgate at \`$(cd "$REPO" && git rev-parse --short HEAD)\`$(cd "$REPO" && git diff --quiet HEAD -- crates || echo ' + uncommitted changes under crates/')"
  else
    BUILD="prebuilt tenantgate binary (TG_BIN, built $(date -u -r "$TG_BIN" +%Y-%m-%dT%H:%MZ))"
  fi
  # A private copy: a concurrent `cargo build --release` must not swap the binary mid-run.
  BIN_DIR=$(mktemp -d)
  cp "$TG_BIN" "$BIN_DIR/tenantgate"
  TG="$BIN_DIR/tenantgate"
  trap dp_cleanup EXIT
  trap 'exit 130' INT TERM

  # Stop leftovers of an interrupted earlier run before --reset removes their directory.
  [ -d "$BENCH_DIR/demo" ] && "$TG" demo --dir "$BENCH_DIR/demo" --stop >/dev/null 2>&1 || true
  rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"; chmod 755 "$BENCH_DIR"
  "$TG" demo --dir "$BENCH_DIR/demo" --reset --no-serve > "$BENCH_DIR/demo.out"
  export TENANTGATE_CONFIG="$BENCH_DIR/demo/tenantgate.toml"
  PG_VERSION=$(psql -X -At "$(sed -n 's/^url = "\(postgres:.*\)"$/\1/p' "$TENANTGATE_CONFIG" | head -1)" -c 'show server_version')

  local slug v line
  for slug in $DP_TENANTS; do
    v=$(dp_var "$slug")
    # The demo's summary prints, per tenant, the direct psql line as its read-write role.
    line=$(awk -v s="  $slug —" 'index($0, s) == 1 {f=1; next} f && /PGPASSWORD=/ {print; exit}' "$BENCH_DIR/demo.out")
    [ -n "$line" ] || { echo "no direct psql line for $slug in the demo output" >&2; exit 1; }
    read -r pw host port user db < <(python3 - "$line" <<'PY'
import re, sys
l = sys.argv[1]
pw = re.search(r"PGPASSWORD=(\S+)", l).group(1)
conn = dict(kv.split("=", 1) for kv in re.search(r'psql "([^"]+)"', l).group(1).split())
print(pw, conn["host"], conn["port"], conn["user"], conn["dbname"])
PY
    )
    printf -v "DIRECT_PW_$v" %s "$pw"; printf -v "DIRECT_HOST_$v" %s "$host"; printf -v "DIRECT_PORT_$v" %s "$port"
    printf -v "DIRECT_USER_$v" %s "$user"; printf -v "DIRECT_DB_$v" %s "$db"
    PGPASSWORD="$pw" psql -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U "$user" "$db" -f "$REPO/bench/pgbench/prepare.sql"
    # ANALYZE needs the table owner: run it as the server's admin, on the whole database.
    psql -X -q -v ON_ERROR_STOP=1 "$(dp_admin_url "$port" "$db")" -c ANALYZE
    printf -v "KEY_$v" %s "$("$TG" key create "$slug" --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
  done
}

# The admin URL of the server listening on PORT, with database DB.
dp_admin_url() {
  sed -n 's/^url = "\(postgres:.*\/\)postgres"$/\1/p' "$TENANTGATE_CONFIG" | grep ":$1/" | head -1 | sed "s/\$/$2/"
}

# dp_serve NAME GATE(true|false) [extra toml for [http]] [worker threads, 0 = one per CPU]
dp_serve() {
  local name=$1 gate=$2 extra=${3:-} threads=${4:-0} pg http cfg
  pg=$(free_port); http=$(free_port)
  # Paths in the demo config are relative to its directory: keep the copy there.
  cfg="$BENCH_DIR/demo/serve-$name.toml"
  cp "$TENANTGATE_CONFIG" "$cfg"
  cat >> "$cfg" <<EOF

[gateway]
listen = "127.0.0.1:$pg"
gate = $gate
# Session pooling: 32 pgbench clients need 32 backends of the tenant role.
pool_max_per_tenant = ${DP_POOL_MAX:-40}
${DP_GATEWAY_EXTRA:-}
server_budget = 120
worker_threads = $threads
# Give idle backends back soon after each run: three gateways and two PgBouncers holding 32
# idle connections each would leave the direct path no slot of max_connections = 200.
pool_idle_timeout_ms = 2000

[http]
listen = "127.0.0.1:$http"
$extra

[http.rate_limit]
rate_per_second = 0
EOF
  "$TG" serve --config "$cfg" > "$BENCH_DIR/serve-$name.log" 2>&1 &
  DP_PIDS+=($!)
  local i
  for i in $(seq 1 100); do
    grep -q 'HTTP API listening' "$BENCH_DIR/serve-$name.log" && break
    kill -0 "${DP_PIDS[-1]}" 2>/dev/null || { cat "$BENCH_DIR/serve-$name.log" >&2; exit 1; }
    sleep 0.1
  done
  printf -v "SERVE_PID_$name" %s "${DP_PIDS[-1]}"
  printf -v "SERVE_PG_PORT_$name" %s "$pg"
  printf -v "SERVE_HTTP_PORT_$name" %s "$http"
}

# dp_pgbouncer NAME MODE SLUG: PgBouncer in pool_mode MODE for SLUG's own database, with
# the tenant's read-write role (same role, same RLS as the direct and gateway paths).
dp_pgbouncer() {
  local name=$1 mode=$2 slug=$3 v port d
  v=$(dp_var "$slug")
  local host=DIRECT_HOST_$v sport=DIRECT_PORT_$v user=DIRECT_USER_$v db=DIRECT_DB_$v pw=DIRECT_PW_$v
  port=$(free_port)
  d="$BENCH_DIR/pgbouncer-$name"
  mkdir -p "$d"
  printf '"%s" "%s"\n' "${!user}" "${!pw}" > "$d/userlist.txt"
  cat > "$d/pgbouncer.ini" <<EOF
[databases]
${!db} = host=${!host} port=${!sport} dbname=${!db}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $d/userlist.txt
pool_mode = $mode
max_client_conn = ${DP_PGB_MAX_CLIENTS:-200}
default_pool_size = ${DP_PGB_POOL:-40}
max_db_connections = ${DP_PGB_POOL:-40}
server_reset_query = DISCARD ALL
; The gateways' pool_idle_timeout_ms (2 s, see dp_serve): the same idle policy for both, so
; neither path runs on warm backends while the other opens new ones.
server_idle_timeout = 2
logfile = $d/pgbouncer.log
pidfile = $d/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
  chown -R postgres "$d"
  # PgBouncer refuses to run as root.
  runuser -u postgres -- pgbouncer -q "$d/pgbouncer.ini" &
  DP_PIDS+=($!)
  local i
  for i in $(seq 1 50); do
    PGPASSWORD="${!pw}" psql -X -At -h 127.0.0.1 -p "$port" -U "${!user}" "${!db}" -c 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  printf -v "PGB_PORT_$name" %s "$port"
  printf -v "PGB_PID_$name" %s "$(cat "$d/pgbouncer.pid")"
}

dp_machine() {
  echo "$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr); PostgreSQL $PG_VERSION (two local demo clusters, fsync on, default settings but max_connections 200); $(pgbouncer --version 2>/dev/null | head -1); ${BUILD}"
}

# CPU time (user + system, in clock ticks) a process has used so far, all threads.
dp_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The load on the machine, for the record: load average and the busiest processes over
# one second (at the start and the end of a run, those are not this benchmark's).
dp_load() {
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg); busiest over 1 s: $(top -b -n 2 -d 1 -w 200 | awk '/^top -/ {n++} n == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 >= 5 {printf "%s %s%%, ", $12, $9}' | head -c 300)"
}
