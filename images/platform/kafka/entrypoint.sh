#!/bin/bash
# Format the broker's data folder once (a new volume), with a SCRAM-SHA-512 credential for each
# file in $KAFKA_SCRAM_USERS_DIR (file name = user, content = password), then run the broker.
# A credential is stored at format time only, like the local stack's broker.
set -euo pipefail
config="${KAFKA_CONFIG:-/etc/kafka/server.properties}"
users_dir="${KAFKA_SCRAM_USERS_DIR:-/etc/kafka/users}"
data="$(sed -n 's/^log\.dirs=//p' "$config")"
java_cmd=(java "-Xms${KAFKA_HEAP:-512m}" "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseG1GC
  -Djava.awt.headless=true "-Dlog4j2.configurationFile=${KAFKA_LOG4J:-/etc/kafka/log4j2.yaml}"
  -cp "/opt/kafka/libs/*")
if [ ! -s "$data/meta.properties" ]; then
  scram=()
  for file in "$users_dir"/*; do
    [ -f "$file" ] || continue
    scram+=(--add-scram "SCRAM-SHA-512=[name=$(basename "$file"),password=$(cat "$file")]")
  done
  echo "formatting $data (cluster ${KAFKA_CLUSTER_ID}, ${#scram[@]} SCRAM argument(s))"
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$config" "${scram[@]}"
fi
exec "${java_cmd[@]}" kafka.Kafka "$config"
