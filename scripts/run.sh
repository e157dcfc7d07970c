#!/usr/bin/env bash
# Serve the portal on 127.0.0.1:8000 with a Celery worker and beat beside it; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
QUEUE=${PORTAL_CLOUD_QUEUE:-cloud.primary}
BIND=${PORTAL_BIND:-127.0.0.1:8000}
mkdir -p var/log var/run
trap 'trap - EXIT INT TERM; kill $(jobs -p) 2>/dev/null; wait' EXIT INT TERM
$BIN/celery -A portal worker -l info -Q "default,$QUEUE" --concurrency 4 -n "portal@%h" \
  >var/log/worker.log 2>&1 &
$BIN/celery -A portal beat -l info --pidfile= >var/log/beat.log 2>&1 &
echo "Celery worker and beat started (logs in var/log/)."
echo "Serving the portal on http://$BIND  (Ctrl-C to stop)"
$BIN/gunicorn portal.wsgi -b "$BIND" -w "${WEB_CONCURRENCY:-3}" --access-logfile - --timeout 60 &
wait -n
