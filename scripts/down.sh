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
