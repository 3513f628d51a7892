"""The only code that touches Faust and Kafka: ingest, flush, transactions, topics, web, metrics."""
