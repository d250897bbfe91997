#!/usr/bin/env bash
# `make test-compose`: `docker compose up`, for real, on a machine without an image registry.
#   1. a Docker engine: the running one, else dockerd started here (host networking only: no
#      bridge, no iptables) and stopped at the end; nothing else it did not start is stopped;
#   2. studio-base:bookworm (scripts/base_image.sh: debootstrap + docker import), kept once built;
#   3. the cpu image from the repository's Dockerfile on it (PYTHON_BASE), with torch's CPU wheel
#      from a local folder when there is one (TORCH_WHEELS_DIR, else pip's find-links), served over
#      http on the loopback for the build's RUN steps; the stack's Postgres and Redis
#      (tests/deploy/images/);
#   4. tests/deploy/test_compose.py (marker `compose`) against docker-compose.yml with
#      tests/deploy/compose.ci.yml on top.
# Builds use the classic builder (DOCKER_BUILDKIT=0): the docker CLI here has no buildx plugin,
# and BuildKit would fetch the Dockerfile's `# syntax=` frontend from Docker Hub. Logs (dockerd,
# builds, the stacks' containers) go to test-artifacts/compose/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TORCH_WHEELS_PORT=${TORCH_WHEELS_PORT:-58081}
LOGS=test-artifacts/compose
mkdir -p "$LOGS"
export DOCKER_BUILDKIT=0

dockerd_pid= wheels_pid=
stop_what_we_started() {
  if [[ -n $wheels_pid ]]; then kill "$wheels_pid" 2>/dev/null || true; fi
  if [[ -n $dockerd_pid ]]; then
    echo "compose_test: stopping the dockerd started here (pid $dockerd_pid)"
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
  fi
}
trap stop_what_we_started EXIT

step() {  # step NAME COMMAND...: run it, its output in $LOGS/NAME.log, and say how long it took
  local name=$1 start=$SECONDS
  shift
  if ! "$@" > "$LOGS/$name.log" 2>&1; then
    tail -n 40 "$LOGS/$name.log" >&2
    echo "compose_test: $name failed (full log: $LOGS/$name.log)" >&2
    exit 1
  fi
  echo "compose_test: $name $((SECONDS - start)) s"
}

# 1. The engine.
if ! docker info >/dev/null 2>&1; then
  dockerd --iptables=false --ip-forward=false --ip-masq=false --bridge=none > "$LOGS/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$LOGS/dockerd.log" >&2; echo "compose_test: dockerd did not start" >&2; exit 1; }
  echo "compose_test: started dockerd (pid $dockerd_pid, storage driver $(docker info -f '{{.Driver}}'))"
fi

# 2-3. The images.
step base-image scripts/base_image.sh studio-base:bookworm

torch_wheels_dir() {  # a local folder holding torch 2.13.0's CPU wheel for CPython 3.11, if any
  local dir
  for dir in ${TORCH_WHEELS_DIR:-} ${PIP_FIND_LINKS:-} $("$PY" -m pip config get global.find-links 2>/dev/null); do
    dir=${dir#file://}
    if compgen -G "$dir/torch-2.13.0+cpu-cp311-cp311-*x86_64.whl" >/dev/null; then
      echo "$dir"
      return
    fi
  done
}
torch_arg=()
wheels=$(torch_wheels_dir)
if [[ -n $wheels ]]; then
  # A fixed address: the build argument is part of the build cache's key.
  "$PY" -m http.server --bind 127.0.0.1 --directory "$wheels" "$TORCH_WHEELS_PORT" > "$LOGS/wheels.log" 2>&1 &
  wheels_pid=$!
  served() { kill -0 "$wheels_pid" 2>/dev/null && curl -fsS "http://127.0.0.1:$TORCH_WHEELS_PORT/" 2>/dev/null | grep torch-2.13.0 >/dev/null; }
  for _ in $(seq 50); do served && break; sleep 0.1; done
  if ! served; then
    cat "$LOGS/wheels.log" >&2
    echo "compose_test: cannot serve $wheels on 127.0.0.1:$TORCH_WHEELS_PORT (TORCH_WHEELS_PORT=... for another port)" >&2
    exit 1
  fi
  torch_arg=(--build-arg "TORCH_WHEELS=http://127.0.0.1:$TORCH_WHEELS_PORT/")
  echo "compose_test: torch's CPU wheel from $wheels"
fi
step cpu-image docker build --network host --target cpu --build-arg PYTHON_BASE=studio-base:bookworm \
  "${torch_arg[@]}" -t dllm2rec-studio:cpu .
if [[ -n $wheels_pid ]]; then kill "$wheels_pid"; wheels_pid=; fi
step postgres-image docker build --network host --target postgres -t studio-postgres:ci tests/deploy/images
step redis-image docker build --network host --target redis -t studio-redis:ci tests/deploy/images

# 4. The stack.
start=$SECONDS
STUDIO_COMPOSE_TESTS=1 "$PY" -m pytest -q -m compose tests/deploy/test_compose.py
echo "compose_test: tests $((SECONDS - start)) s"
