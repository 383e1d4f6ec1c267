"""triage: route customer-support messages on Apache Kafka with many independent binary
classifiers.

The one import name. Each subpackage is a top-level folder of the repository (linked here), and
the folders are the layers, bottom to top: `schemas` (contracts), `core` (the platform),
`producer`, `consumers`, `aggregator`, `encoder`, `monitor` (the services), `gateway` and
`training` (built on them), `tools` and `local` (operator tools, the local cluster), `cli`.
"""
