# One image for every triage service (`triage <command>`), with the demo models trained at
# build time into /models from demo/data/train.csv. docker-compose.yml runs it.
FROM python:3.11.11-slim-bookworm

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
# the services never plot.
RUN pip install --no-cache-dir ".[serve,encoder]"

COPY demo/data/train.csv demo/data/train.csv
RUN triage train --data demo/data/train.csv --out /models

USER nobody
ENTRYPOINT ["triage"]
CMD ["--help"]
