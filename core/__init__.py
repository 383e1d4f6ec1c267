"""The platform under every service: settings, the Kafka connector, the run loop, the registry,
the topology and the model core."""
