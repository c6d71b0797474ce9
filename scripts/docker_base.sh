#!/usr/bin/env bash
# Local stand-ins for the images the Dockerfile and docker-compose.yml name, built OFFLINE from
# Debian packages, for machines that reach Debian's and PyPI's package registries but no container
# registry. Each is tagged with the official name, so the Dockerfile and the compose file stay the
# ones users build: on a normal machine none of this is needed (`docker build` and `docker compose
# up` pull python:3.11-slim, redis, postgres and livekit/livekit-server themselves).
#
#   scripts/docker_base.sh              python:3.11-slim (the Dockerfile's base)
#   scripts/docker_base.sh all          also livekit/livekit-server, redis and postgres (compose)
#   scripts/docker_base.sh NAME ...     only those: python, livekit, redis, postgres
#   FORCE=1 scripts/docker_base.sh ...  rebuild even if the tag exists
#
# Idempotent: an image whose tag exists is left alone. Needs a running docker daemon; installs
# mmdebstrap with apt if missing. The stand-ins are not the official images: Debian bookworm's
# Python (3.11.2) in /usr/bin rather than /usr/local/bin, Redis 7.0 and PostgreSQL 15 from Debian,
# and livekit-server from build/livekit-server (scripts/setup --livekit builds it with Go).
# The host's extra CA certificates (/usr/local/share/ca-certificates) are copied into each image's
# trust store: where the package registries are reached through a TLS-inspecting gateway, pip in a
# container fails certificate verification without them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_TAG=python:3.11-slim
LIVEKIT_TAG=livekit/livekit-server:v1.13.5   # the version scripts/setup builds
REDIS_TAG=redis:7.0-bookworm
POSTGRES_TAG=postgres:15-bookworm
SUITE=bookworm

command -v docker >/dev/null || { echo "docker_base: error: no docker client" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "docker_base: error: the docker daemon is not running" >&2; exit 1; }
if ! command -v mmdebstrap >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "docker_base: installing mmdebstrap"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mmdebstrap >/dev/null
fi

# Hook: the host's extra CA certificates into the image's trust store (a no-op where there are none).
CA_HOOK='if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$1/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"
  chroot "$1" update-ca-certificates >/dev/null 2>&1
fi'
# Hook: what a container image need not carry.
SLIM_HOOK='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/*'

have() { [ -z "${FORCE:-}" ] && docker image inspect "$1" >/dev/null 2>&1; }

# debstrap TAG PACKAGES (ca-certificates always) [mmdebstrap options...] -- [docker import --change ...]
debstrap() {
  local tag=$1 include=$2; shift 2
  local mm=() changes=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do mm+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  for c in "$@"; do changes+=(--change "$c"); done
  echo "docker_base: building $tag (mmdebstrap $SUITE, then docker import)"
  local t0=$SECONDS
  mmdebstrap --quiet --variant=apt --include="ca-certificates,$include" \
    --customize-hook="$CA_HOOK" --customize-hook="$SLIM_HOOK" "${mm[@]}" \
    "$SUITE" - | docker import "${changes[@]}" - "$tag" >/dev/null || {
    # a failed mmdebstrap still feeds docker import a (truncated) stream: never keep that image
    docker rmi -f "$tag" >/dev/null 2>&1 || true
    echo "docker_base: error: building $tag failed" >&2; exit 1; }
  echo "docker_base: $tag ready in $((SECONDS - t0)) s ($(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec))"
}

python_image() {
  have "$PYTHON_TAG" && { echo "docker_base: $PYTHON_TAG present"; return; }
  # ca-certificates for pip; python3-venv because Debian's Python refuses system-wide pip
  # installs (the Dockerfile uses a venv). Environment as in the official image, plus the trust
  # store for pip.
  debstrap "$PYTHON_TAG" python3,python3-venv,python3-pip,python-is-python3 -- \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV LANG=C.UTF-8' \
    'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    'CMD ["python3"]'
}

livekit_image() {
  have "$LIVEKIT_TAG" && { echo "docker_base: $LIVEKIT_TAG present"; return; }
  [ -x build/livekit-server ] || {
    echo "docker_base: error: no build/livekit-server (scripts/setup --livekit builds it)" >&2; exit 1; }
  # The official image's layout: the binary at /livekit-server, which is the entrypoint.
  debstrap "$LIVEKIT_TAG" tzdata \
    --customize-hook="copy-in build/livekit-server /" -- \
    'ENTRYPOINT ["/livekit-server"]' 'EXPOSE 7880 7881 7882/udp'
}

redis_image() {
  have "$REDIS_TAG" && { echo "docker_base: $REDIS_TAG present"; return; }
  debstrap "$REDIS_TAG" redis-server -- 'CMD ["redis-server"]' 'EXPOSE 6379'
}

postgres_image() {
  have "$POSTGRES_TAG" && { echo "docker_base: $POSTGRES_TAG present"; return; }
  # docker/postgres/entrypoint.sh does what the compose file uses of the official image's
  # entrypoint: POSTGRES_USER/PASSWORD/DB on first start, then `postgres ARGS` as user postgres.
  debstrap "$POSTGRES_TAG" postgresql-15 \
    --customize-hook="copy-in docker/postgres/entrypoint.sh /usr/local/bin" -- \
    'ENV PGDATA=/var/lib/postgresql/data' \
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]' 'CMD ["postgres"]' 'EXPOSE 5432'
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(python)
[ "${targets[*]}" = all ] && targets=(python livekit redis postgres)
for t in "${targets[@]}"; do
  case "$t" in
    python|livekit|redis|postgres) "${t}_image" ;;
    *) echo "docker_base: error: unknown image $t (python, livekit, redis, postgres or all)" >&2; exit 2 ;;
  esac
done
