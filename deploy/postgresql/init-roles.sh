#!/bin/sh
# PostgreSQL's image runs this once, on a new data volume (docker-entrypoint-initdb.d, from
# deploy/compose.yaml): the two roles and the database of roles.sql, with the passwords given.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$LEUKOLENS_OWNER_PASSWORD" \
    -v app_password="$LEUKOLENS_APP_PASSWORD" \
    -f /leukolens/roles.sql
