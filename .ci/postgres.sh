#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the store tests and print the line that points
# the tests at it:
#
#   eval "$(.ci/postgres.sh)"     # then: .venv/bin/pytest tests/store -q
#
# - installs Debian's postgresql with apt when no initdb/pg_ctl is found;
# - inits a cluster (trust auth, superuser "postgres") in a temp dir, as the OS user
#   postgres when run as root (PostgreSQL refuses to run as root), else as the caller;
# - starts it on 127.0.0.1:$PGPORT (default 55432) and waits until it accepts connections;
# - is idempotent: if the cluster already answers, it only prints the export line.
#
# Diagnostics go to stderr so that stdout is exactly the export line.
set -euo pipefail

PGPORT="${PGPORT:-55432}"
PGHOST=127.0.0.1
PGDATA="${PGDATA:-${TMPDIR:-/tmp}/playbook-postgres-${PGPORT}}"
URL="postgresql+psycopg://postgres@${PGHOST}:${PGPORT}/postgres"

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    # Newest installed major version wins.
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        echo "$dir"
    fi
}

BINDIR="$(find_bindir)"
if [[ -z "$BINDIR" ]]; then
    log "PostgreSQL not found; installing it with apt"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    BINDIR="$(find_bindir)"
    [[ -n "$BINDIR" ]] || { log "initdb/pg_ctl still missing after install"; exit 1; }
fi

# Run a PostgreSQL binary as the cluster owner.
if [[ "$(id -u)" == 0 ]]; then
    as_owner() { runuser -u postgres -- "$@"; }
    OWNER=postgres
else
    as_owner() { "$@"; }
    OWNER="$(id -un)"
fi

ready() { "$BINDIR/pg_isready" -q -h "$PGHOST" -p "$PGPORT" -U postgres; }

if ready; then
    log "already running on ${PGHOST}:${PGPORT}"
    echo "export DATABASE_URL_POSTGRES=${URL}"
    exit 0
fi

if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    log "initialising cluster in $PGDATA"
    mkdir -p "$PGDATA"
    chown "$OWNER" "$PGDATA"
    chmod 700 "$PGDATA"
    as_owner "$BINDIR/initdb" -D "$PGDATA" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >&2
fi

# A stale pid file from a killed server would stop pg_ctl; it checks and clears it itself
# only if no process owns it, so "start" is safe to call again.
log "starting on ${PGHOST}:${PGPORT}"
as_owner "$BINDIR/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
    -o "-p ${PGPORT} -c listen_addresses=${PGHOST} -k ${PGDATA} -c fsync=off" start >&2

for _ in $(seq 1 60); do
    if ready; then
        echo "export DATABASE_URL_POSTGRES=${URL}"
        exit 0
    fi
    sleep 0.5
done
log "server did not become ready; see $PGDATA/server.log"
exit 1
