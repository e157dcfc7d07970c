#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1, starting them (or installing them from
# Debian's packages) when they do not, and that the portal's database exists.
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DB_NAME=${DB_NAME:-portal}
REDIS_PORT=${REDIS_PORT:-6379}
apt_updated=
need_root() { [ "$(id -u)" = 0 ] || { echo "ensure-services: $1 needs root to install/start; run as root or start it yourself" >&2; exit 1; }; }
apt_install() {
  need_root "apt-get install $*"
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() { # wait_for SECONDS CMD...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2; }
if ! command -v pg_isready >/dev/null 2>&1; then apt_install postgresql postgresql-client; fi
if ! pg_up; then
  echo "ensure-services: starting PostgreSQL"
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_for 30 pg_up || { echo "ensure-services: PostgreSQL did not start on $PGHOST:$PGPORT" >&2; exit 1; }
fi
if ! psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -tAc "select 1" >/dev/null 2>&1; then
  # A fresh Debian cluster has peer auth only: allow trust on loopback for local development.
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -1)
  if ! grep -q 'portal-local-trust' "$hba"; then
    need_root "configuring PostgreSQL"
    sed -i '1i host all all 127.0.0.1/32 trust # portal-local-trust\nhost all all ::1/128 trust # portal-local-trust' "$hba"
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  fi
fi
if ! psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -tAc "select 1 from pg_database where datname='$DB_NAME'" | grep -q 1; then
  createdb -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" "$DB_NAME"
  echo "ensure-services: created database $DB_NAME"
fi

redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping | grep -q PONG; }
if ! command -v redis-server >/dev/null 2>&1; then apt_install redis-server; fi
if ! redis_up; then
  echo "ensure-services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/portal.log
  wait_for 15 redis_up || { echo "ensure-services: Redis did not start on port $REDIS_PORT" >&2; exit 1; }
fi
echo "ensure-services: PostgreSQL and Redis are up"
