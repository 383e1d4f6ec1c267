# One image for every triage service (`triage <command>`). BASE: the public python:3.11 slim
# image by default; deploy/images/build.sh (`make images`) passes a Debian bookworm made here by
# debootstrap, whose python3 is 3.11, so no registry is needed. MODELS=demo trains the demo
# models into /models at build time; MODELS=none leaves /models for a volume.
ARG BASE=python:3.11.11-slim-bookworm
FROM ${BASE}

# The build machine's extra CA certificates (deploy/images/build.sh copies them here; empty for
# a plain `docker build`), trusted by apt, pip and the services alike.
COPY deploy/images/ca-certificates/ /usr/local/share/ca-certificates/
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PATH=/opt/triage/bin:$PATH \
    PYTHONUNBUFFERED=1
# The Debian base has no Python; python:3.11-slim has one (and ca-certificates) already.
RUN if ! command -v python3 >/dev/null; then \
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && update-ca-certificates >/dev/null && python3 -m venv /opt/triage

WORKDIR /app
COPY pyproject.toml README.md ./
# `triage/` links every source folder (the README's tree): all of them, the links kept.
COPY triage triage
COPY schemas schemas
COPY core core
COPY producer producer
COPY consumers consumers
COPY aggregator aggregator
COPY encoder encoder
COPY monitor monitor
COPY gateway gateway
COPY training training
COPY tools tools
COPY local local
COPY cli cli
# `serve` for `triage serve`, `encoder` for `triage encoder`; no `report` extra (matplotlib):
# the services never plot. The compose stack's build leaves out `encoder` (see build.sh).
ARG EXTRAS=serve,encoder
RUN pip install --no-cache-dir ".[${EXTRAS}]"

ARG MODELS=demo
COPY demo/data/train.csv demo/data/train.csv
RUN mkdir -p /models && if [ "$MODELS" = demo ]; then \
      triage train --data demo/data/train.csv --out /models; fi

USER nobody
ENTRYPOINT ["triage"]
CMD ["--help"]
