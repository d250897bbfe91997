#!/bin/sh
# The official postgres image's contract, as docker-compose.yml uses it: on an empty PGDATA, a
# cluster whose superuser POSTGRES_USER has the password POSTGRES_PASSWORD (required over TCP,
# scram-sha-256) and a database POSTGRES_DB; an existing cluster is kept as it is (a changed
# POSTGRES_PASSWORD then changes nothing). Then the server, in the foreground.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password=$(mktemp)
  printf '%s' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}" > "$password"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$password" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$password"
  echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" postgres >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi
exec "$@"
