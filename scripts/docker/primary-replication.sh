#!/bin/sh
# Run once by the postgres image when it initialises its data folder
# (docker-entrypoint-initdb.d): lets the `replica` service of
# docker-compose.yml stream from this server over the compose network, with
# the same password as every other connection.
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
