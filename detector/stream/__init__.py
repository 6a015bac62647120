"""The Kafka side: the Faust app, its input consumer, state handover and snapshots, metrics and
settings. The only package that imports Faust, aiokafka or prometheus_client."""
