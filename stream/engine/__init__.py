"""The rule engine: events and state in, awards and new state out. Pure Python, no Kafka."""
