"""The Kafka connector: the only package (with the local-cluster tooling) that imports kafka-python.

`clients` builds clients, `transactions` commits a batch exactly once, `group_health` ends a
session whose consumer stops being a working member of its group, `hung` finds and aborts the
open transactions that hold a partition, `topics` creates and
subscribes, `reader` reads a topic from its start, `admin` answers questions about groups and
offsets, `security` probes a connection and names refusals, `noise` keeps the client's
harmless alarms out of the logs. Layers above catch `KafkaError`
from here, never from kafka-python.
"""

from kafka.errors import KafkaError as KafkaError
from kafka.errors import KafkaTimeoutError as KafkaTimeoutError
