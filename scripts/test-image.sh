#!/usr/bin/env bash
# Builds the local test image swarm-test/busybox:latest from Debian's busybox-static, so no
# test ever pulls from a registry. Does nothing if the image exists.
set -euo pipefail
IMAGE=${IMAGE:-swarm-test/busybox:latest}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
BUSYBOX=/bin/busybox
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked'; then
  if [ -x /usr/bin/busybox ] && file -L /usr/bin/busybox | grep -q 'statically linked'; then
    BUSYBOX=/usr/bin/busybox
  else
    echo "installing busybox-static for the test image"
    apt-get update -qq && apt-get install -y -qq busybox-static file >/dev/null
    BUSYBOX=$(command -v busybox)
  fi
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$BUSYBOX" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null
echo "built $IMAGE"
