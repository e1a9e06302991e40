#!/usr/bin/env bash
# Starts (or restarts) a one-node swarm-rs cluster from this checkout, creates the example
# service and shows the cluster. State lives in $UP_DIR; `make down` stops it.
set -euo pipefail
UP_DIR=${UP_DIR:-$PWD/.swarm-up}
UP_ADDR=${UP_ADDR:-127.0.0.1:2377}
BIN=$PWD/target/release
DATA=$UP_DIR/node
SOCK=$DATA/swarmd.sock
export SWARM_HOST=unix://$SOCK
mkdir -p "$UP_DIR"

running() { [ -S "$SOCK" ] && "$BIN/swarmctl" node ls -q >/dev/null 2>&1; }

if running; then
  echo "swarmd is already running ($SOCK)"
else
  if [ -f "$DATA/node.json" ]; then
    echo "restarting the cluster in $DATA"
    nohup "$BIN/swarmd" --data-dir "$DATA" run >>"$UP_DIR/swarmd.log" 2>&1 &
  else
    echo "creating a one-node cluster in $DATA (listening on $UP_ADDR)"
    nohup "$BIN/swarmd" --data-dir "$DATA" init --listen-addr "$UP_ADDR" >>"$UP_DIR/swarmd.log" 2>&1 &
  fi
  echo $! >"$UP_DIR/swarmd.pid"
  for _ in $(seq 1 100); do
    running && break
    if ! kill -0 "$(cat "$UP_DIR/swarmd.pid")" 2>/dev/null; then
      echo "swarmd failed to start; its log ($UP_DIR/swarmd.log) ends with:" >&2
      tail -n 20 "$UP_DIR/swarmd.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  running || { echo "swarmd did not come up in 10 s; see $UP_DIR/swarmd.log" >&2; exit 1; }
fi

# The example service: two containers of the local test image on this node's Docker engine.
if ! "$BIN/swarmctl" service inspect hello >/dev/null 2>&1; then
  "$BIN/swarmctl" service create --name hello --replicas 2 swarm-test/busybox:latest sleep 3600 >/dev/null
fi
for _ in $(seq 1 100); do
  "$BIN/swarmctl" service ls | grep -q ' 2/2 ' && break
  sleep 0.2
done

echo
"$BIN/swarmctl" node ls
echo
"$BIN/swarmctl" service ls
echo
"$BIN/swarmctl" service ps hello
echo
docker ps --filter label=com.docker.swarm.service.name=hello --format 'table {{.Names}}\t{{.Status}}'
echo
echo "Use it with:  export SWARM_HOST=$SWARM_HOST; $BIN/swarmctl node ls"
echo "Join another node:  $BIN/swarmctl swarm join-token worker"
echo "Stop it with: make down (the containers keep running until the service is removed: swarmctl service rm hello)"
