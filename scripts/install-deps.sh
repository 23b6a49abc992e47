#!/usr/bin/env bash
# Install what a fresh Debian/Ubuntu machine lacks to build and test tenantgate:
# libclang (the pg_query crate's build needs it) and PostgreSQL 15 server binaries
# (initdb/pg_ctl, used by the demo and the tests), pgBackRest (backups, point-in-time restore),
# plus psql/pgbench, a JDK and pgjdbc (the drop-in clients suite).
# Idempotent: installs nothing that is already there.
set -euo pipefail

need=()
have_libclang() {
  # bindgen (used by pg_query's build) loads libclang.so itself; libclang-cpp does not count.
  if command -v dpkg-query >/dev/null; then
    dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'install ok installed' && return 0
  fi
  compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null && return 0
  compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null && return 0
  compgen -G '/usr/lib/x86_64-linux-gnu/libclang.so' >/dev/null && return 0
  compgen -G '/usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so*' >/dev/null && return 0
  return 1
}
have_initdb() {
  [ -n "${TENANTGATE_PG_BIN:-}" ] && [ -x "$TENANTGATE_PG_BIN/initdb" ] && return 0
  compgen -G '/usr/lib/postgresql/1[5-9]/bin/initdb' >/dev/null && return 0
  command -v initdb >/dev/null && return 0
  return 1
}

have_libclang || need+=(libclang-dev)
have_initdb || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
command -v pgbench >/dev/null || need+=(postgresql-contrib-15)
command -v runuser >/dev/null || need+=(util-linux)
# Physical backups and WAL archiving for point-in-time restore (tests/restore.rs, `make demo`).
command -v pgbackrest >/dev/null || need+=(pgbackrest)
# The drop-in clients suite (crates/tenantgate/tests/clients.rs) runs pgjdbc as a single-file
# Java program: a JDK 11+ and Debian's pgjdbc jar.
command -v java >/dev/null || need+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not installed. Install Rust with rustup (https://rustup.rs), then re-run." >&2
  exit 1
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "installing: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "error: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq "${need[@]}"; then
  # Ubuntu releases without PostgreSQL 15 in their archive get the distribution default.
  fallback=("${need[@]/postgresql-15/postgresql}")
  fallback=("${fallback[@]/postgresql-client-15/postgresql-client}")
  fallback=("${fallback[@]/postgresql-contrib-15/postgresql-contrib}")
  $SUDO apt-get install -y -qq "${fallback[@]}"
fi
