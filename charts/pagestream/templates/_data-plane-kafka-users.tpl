{{- define "pagestream.dataPlane.kafkaUsers" }}
{{- if .Values.kafka.create }}
{{- $k := .Values.kafka }}
{{- if $k.users.pipeline.create }}
# The streaming job's identity: SCRAM-SHA-512, read-only on the pipeline's topic. Strimzi's user
# operator generates the password into a Secret named like the user; the pipeline references
# that Secret, so no password ever passes through this chart.
apiVersion: kafka.strimzi.io/v1
kind: KafkaUser
metadata:
  name: {{ $k.users.pipeline.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "pagestream.componentLabels" (dict "root" . "component" "kafka-user") | nindent 4 }}
    strimzi.io/cluster: {{ $k.name }}
spec:
  authentication:
    type: scram-sha-512
  authorization:
    type: simple
    acls:
      - resource:
          type: topic
          name: {{ $k.topic }}
          patternType: literal
        operations: [Read, Describe, DescribeConfigs]
      # Spark's Kafka source uses generated consumer groups named spark-kafka-source-*.
      - resource:
          type: group
          name: spark-kafka-source-
          patternType: prefix
        operations: [Read, Describe]
{{- end }}
{{- if $k.users.producer.create }}
---
# The simulator's (or any producer's) identity: SCRAM-SHA-512, write-only on the topic.
apiVersion: kafka.strimzi.io/v1
kind: KafkaUser
metadata:
  name: {{ $k.users.producer.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "pagestream.componentLabels" (dict "root" . "component" "kafka-user") | nindent 4 }}
    strimzi.io/cluster: {{ $k.name }}
spec:
  authentication:
    type: scram-sha-512
  authorization:
    type: simple
    acls:
      - resource:
          type: topic
          name: {{ $k.topic }}
          patternType: literal
        operations: [Write, Describe]
      # Idempotent producers need IdempotentWrite on the cluster.
      - resource:
          type: cluster
        operations: [IdempotentWrite]
{{- end }}
{{- end }}
{{- end }}
