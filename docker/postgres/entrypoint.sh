#!/bin/sh
# Entrypoint of the local PostgreSQL stand-in (scripts/docker_base.sh): the part of the official
# image's docker-entrypoint.sh that docker-compose.yml relies on. First start: a cluster owned by
# POSTGRES_USER with POSTGRES_PASSWORD, and the database POSTGRES_DB. Then `postgres ARGS` runs as
# user postgres, listening on every address (pg_hba.conf decides who gets in).
set -eu
if [ "${1:-}" != postgres ]; then exec "$@"; fi
shift
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
  chown postgres "$pw"
  runuser -u postgres -- initdb -D "$PGDATA" -U "$user" --pwfile="$pw" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pw"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" |
      runuser -u postgres -- postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
fi
exec runuser -u postgres -- postgres -c listen_addresses='*' "$@"
