#!/usr/bin/env bash
# Stops the cluster started by `make up`.
set -euo pipefail
UP_DIR=${UP_DIR:-$PWD/.swarm-up}
PIDFILE=$UP_DIR/swarmd.pid
if [ ! -f "$PIDFILE" ]; then
  echo "no cluster started by make up"
  exit 0
fi
PID=$(cat "$PIDFILE")
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID"
  for _ in $(seq 1 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null; then
    echo "swarmd ($PID) did not stop in 10 s; killing it" >&2
    kill -KILL "$PID"
  fi
  echo "stopped swarmd ($PID)"
else
  echo "swarmd ($PID) was not running"
fi
rm -f "$PIDFILE"
# Remove this node's task containers too: nothing supervises them while swarmd is down.
NODE_ID=$(sed -n 's/.*"node_id": *"\([a-z0-9]*\)".*/\1/p' "$UP_DIR/node/node.json" 2>/dev/null || true)
if [ -n "$NODE_ID" ] && command -v docker >/dev/null; then
  ids=$(docker ps -aq --filter "label=com.docker.swarm.node.id=$NODE_ID")
  if [ -n "$ids" ]; then
    docker rm -f $ids >/dev/null
    echo "removed $(echo "$ids" | wc -l) task containers"
  fi
fi
