{{- define "pagestream.dataPlane.kafka" }}
{{- if .Values.kafka.create }}
{{- $k := .Values.kafka }}
{{- $rf := min 3 (int $k.replicas) }}
{{- $minIsr := max 1 (sub $rf 1) }}
# A Strimzi Kafka cluster in KRaft mode: no ZooKeeper; the node pool below carries both the
# controller and the broker role.
apiVersion: kafka.strimzi.io/v1
kind: Kafka
metadata:
  name: {{ $k.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "pagestream.componentLabels" (dict "root" . "component" "kafka") | nindent 4 }}
  annotations:
    strimzi.io/node-pools: enabled
    strimzi.io/kraft: enabled
spec:
  kafka:
    {{- with $k.version }}
    version: {{ . | quote }}
    {{- end }}
    listeners:
      # In-cluster clients authenticate with SCRAM-SHA-512 (the KafkaUsers below).
      - name: scram
        port: 9092
        type: internal
        tls: false
        authentication:
          type: scram-sha-512
    authorization:
      type: simple
    config:
      offsets.topic.replication.factor: {{ $rf }}
      transaction.state.log.replication.factor: {{ $rf }}
      transaction.state.log.min.isr: {{ $minIsr }}
      default.replication.factor: {{ $rf }}
      min.insync.replicas: {{ $minIsr }}
  entityOperator:
    # The topic operator creates the pipeline's KafkaTopic; the user operator the KafkaUsers.
    topicOperator: {}
    userOperator: {}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaNodePool
metadata:
  name: {{ $k.name }}-dual
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "pagestream.componentLabels" (dict "root" . "component" "kafka") | nindent 4 }}
    strimzi.io/cluster: {{ $k.name }}
spec:
  replicas: {{ $k.replicas }}
  roles:
    - controller
    - broker
  storage:
    {{- if eq $k.storage.type "ephemeral" }}
    type: ephemeral
    {{- else }}
    type: jbod
    volumes:
      - id: 0
        type: persistent-claim
        size: {{ $k.storage.size }}
        {{- with $k.storage.class }}
        class: {{ . }}
        {{- end }}
        deleteClaim: {{ $k.storage.deleteClaim }}
        kraftMetadata: shared
    {{- end }}
  resources:
    {{- toYaml $k.resources | nindent 4 }}
{{- end }}
{{- end }}
