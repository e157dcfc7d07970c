#!/usr/bin/env bash
# Serve the portal on 127.0.0.1:8000 with a Celery worker for each queue (cloud work, the mirror
# sync, default) and beat beside it: honcho runs the Procfile, each process restarted if it dies
# (scripts/respawn), every line of output on this console prefixed with its process's name.
# Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PORTAL_CLOUD_QUEUE=${PORTAL_CLOUD_QUEUE:-cloud.primary}
export PORTAL_SYNC_QUEUE=${PORTAL_SYNC_QUEUE:-sync.${PORTAL_CLOUD_QUEUE#*.}}  # as portal/settings/base.py derives it
export PORTAL_DEFAULT_QUEUE=${PORTAL_DEFAULT_QUEUE:-default}
# The queues of the regions beside the primary (from Keystone's catalog), for the "regions" worker;
# none: it waits on an idle queue.
if [ -z "${PORTAL_REGION_QUEUES:-}" ]; then
  PORTAL_REGION_QUEUES=$(.venv/bin/python manage.py regions --refresh --queues 2>/dev/null || true)
fi
export PORTAL_REGION_QUEUES=${PORTAL_REGION_QUEUES:-regions.idle}
export PORTAL_BIND=${PORTAL_BIND:-127.0.0.1:8000}
export PORTAL_RUN_DIR=${PORTAL_RUN_DIR:-var/run}
export PYTHONUNBUFFERED=1  # lines reach honcho as they are written
# /metrics sums what every process recorded, through files in one directory emptied at start.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PORTAL_RUN_DIR/prometheus}
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p var/log "$PORTAL_RUN_DIR" "$PROMETHEUS_MULTIPROC_DIR"
echo "Serving the portal on http://$PORTAL_BIND, with Celery workers for $PORTAL_CLOUD_QUEUE, $PORTAL_SYNC_QUEUE," \
     "$PORTAL_DEFAULT_QUEUE and the regions' $PORTAL_REGION_QUEUES, and beat (Ctrl-C to stop)."
# The environment as given (settings read .env themselves, without overriding it): no .env for honcho.
exec .venv/bin/honcho --env /dev/null --procfile Procfile start
