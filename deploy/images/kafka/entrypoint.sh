#!/bin/sh
# Formats the data directory on first start, then runs the node. Two listeners: INTERNAL is
# what other containers dial (KAFKA_INTERNAL_HOST:9092), EXTERNAL what the host dials through a
# published port (KAFKA_EXTERNAL_ADVERTISED, e.g. localhost:29092).
set -euf  # -f: the classpath glob below is for java, not the shell
data=/var/lib/kafka
conf=/opt/kafka/server.properties
internal=${KAFKA_INTERNAL_HOST:-kafka}
external=${KAFKA_EXTERNAL_ADVERTISED:-localhost:9094}
cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=INTERNAL://:9092,EXTERNAL://:9094,CONTROLLER://localhost:9093
advertised.listeners=INTERNAL://$internal:9092,EXTERNAL://$external
listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
log.dirs=$data
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
log.cleaner.dedupe.buffer.size=16777216
PROPS
# shellcheck disable=SC2086  # the heap flags are meant to split
jvm="java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} -Djava.awt.headless=true
  -Dlog4j2.configurationFile=/opt/kafka/kafka_log4j2.properties -cp /opt/kafka/libs/*"
if [ ! -f "$data/meta.properties" ]; then
  # A fixed id (22 characters of base64, as the storage tool wants): one node, one cluster.
  $jvm kafka.tools.StorageTool format -t "${KAFKA_CLUSTER_ID:-dHJpYWdlLWNvbXBvc2UtMQ}" \
    -c "$conf" --ignore-formatted >/dev/null
fi
exec $jvm kafka.Kafka "$conf"
