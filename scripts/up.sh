#!/usr/bin/env bash
# Starts (or restarts) a one-node swarm-rs cluster from this checkout, deploys the example
# stack and shows it running. State lives in $UP_DIR; `make down` stops it.
set -euo pipefail
UP_DIR=${UP_DIR:-$PWD/.swarm-up}
UP_ADDR=${UP_ADDR:-127.0.0.1:2377}
BIN=${BIN:-$PWD/target/release}
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

# The example stack (examples/hello-stack.yml): containers of the local test image on this
# node's Docker engine. Deploying again changes nothing unless the file changed.
"$BIN/swarmctl" stack deploy -c "$PWD/examples/hello-stack.yml" hello
for _ in $(seq 1 100); do
  "$BIN/swarmctl" stack services hello | grep -q ' 2/2 ' && break
  sleep 0.2
done

echo
"$BIN/swarmctl" node ls
echo
"$BIN/swarmctl" stack services hello
echo
"$BIN/swarmctl" stack ps hello
echo
docker ps --filter label=com.docker.stack.namespace=hello --format 'table {{.Names}}\t{{.Status}}'
echo
echo "Use it with:  export SWARM_HOST=$SWARM_HOST; $BIN/swarmctl node ls"
echo "Join another node:  $BIN/swarmctl swarm join-token worker"
echo "Stop it with: make down (stops swarmd and removes its task containers; make up starts it again)"
