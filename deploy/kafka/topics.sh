#!/usr/bin/env bash
# Create the detector's topics with Apache Kafka's kafka-topics.sh. Safe to re-run: existing topics
# are left alone (--if-not-exists), even if their settings differ; check them with --describe.
#
#   BOOTSTRAP=kafka-0:9093 PARTITIONS=12 REPLICATION=3 deploy/kafka/topics.sh
#   BOOTSTRAP=kafka-0:9093 COMMAND_CONFIG=admin.properties deploy/kafka/topics.sh   # SASL/TLS admin
#
# Topic names come from the same DETECTOR_* variables the worker reads (so `set -a; .
# /etc/distillation-detector/detector.env; set +a` first keeps the two in step), with the same
# defaults.
#
# Partitions: the input topic's partition count caps the number of workers that do anything
# (one partition is read by one worker), and its records are keyed by account_id, so an
# account's records meet in one worker. Choose it for the largest deployment you expect and do
# not change it later: adding partitions moves accounts to other partitions, and the workers
# lose those accounts' history (deploy/kubernetes/README.md). The other topics get the same
# count, which is also DETECTOR_PARTITIONS.
#
# The worker also creates topics of its own on first start, all prefixed with DETECTOR_APP_ID:
# <app_id>-__assignor-__leader (Faust's); <app_id>-account-summaries (1 partition: the campaign
# stage's input), <app_id>-campaign-news (1 partition, compacted: membership and the campaign clock
# for the detect steps), <app_id>-campaign-state (1 partition, compacted: the campaign stage's
# checkpoints); and <app_id>-account-state (compacted, retention = account TTL: profiles handed over
# on rebalances). Its principal needs CREATE on topics with that prefix, or those topics must be
# created beforehand with the same settings.
set -euo pipefail

KAFKA_TOPICS=${KAFKA_TOPICS:-kafka-topics.sh}
BOOTSTRAP=${BOOTSTRAP:-localhost:9092}
PARTITIONS=${PARTITIONS:-${DETECTOR_PARTITIONS:-8}}
REPLICATION=${REPLICATION:-${DETECTOR_REPLICATION_FACTOR:-1}}
INPUT_TOPIC=${DETECTOR_INPUT_TOPIC:-llm.requests}
ALERTS_TOPIC=${DETECTOR_ALERTS_TOPIC:-llm.alerts}
DLQ_TOPIC=${DETECTOR_DLQ_TOPIC:-llm.requests.dlq}
MEMBERSHIP_TOPIC=${DETECTOR_MEMBERSHIP_TOPIC:-llm.campaign-members}

DAY_MS=86400000
# Input: 3 days, enough to rebuild after a weekend outage by resetting the group's offsets.
INPUT_RETENTION_MS=${INPUT_RETENTION_MS:-$((3 * DAY_MS))}
# Alerts: 30 days; downstream systems (SIEM, ticketing) are expected to keep their own copy.
ALERTS_RETENTION_MS=${ALERTS_RETENTION_MS:-$((30 * DAY_MS))}
# Dead letters: 14 days, time for a producer team to find and fix what they send.
DLQ_RETENTION_MS=${DLQ_RETENTION_MS:-$((14 * DAY_MS))}

command_config=()
if [[ -n ${COMMAND_CONFIG:-} ]]; then
    command_config=(--command-config "$COMMAND_CONFIG")
fi

create() {
    local topic=$1 max_message_bytes=$2
    shift 2
    "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" "${command_config[@]}" \
        --create --if-not-exists --topic "$topic" \
        --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
        --config max.message.bytes="$max_message_bytes" "$@"
}

# The worker reads input messages of up to 8 MiB (NDJSON batches); bigger ones are rejected
# unread as too_large. Dead letters carry up to 64 KiB of the original record each.
create "$INPUT_TOPIC" $((8 * 1024 * 1024)) --config cleanup.policy=delete --config retention.ms="$INPUT_RETENTION_MS"
create "$ALERTS_TOPIC" $((1024 * 1024)) --config cleanup.policy=delete --config retention.ms="$ALERTS_RETENTION_MS"
create "$DLQ_TOPIC" $((1024 * 1024)) --config cleanup.policy=delete --config retention.ms="$DLQ_RETENTION_MS"
# Account -> campaign membership, keyed by account_id: only the newest value per account matters,
# and every worker reads the whole topic at start-up, so it is compacted, never deleted by age.
create "$MEMBERSHIP_TOPIC" $((1024 * 1024)) --config cleanup.policy=compact
