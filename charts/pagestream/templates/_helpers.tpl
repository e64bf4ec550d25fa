{{/*
The standard helper set: names truncated to 63 characters (the DNS label limit), labels with
helm.sh/chart and app.kubernetes.io/*, and selector labels with name and instance only, so
selectors never change between chart versions.
*/}}

{{- define "pagestream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pagestream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pagestream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pagestream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pagestream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pagestream.labels" -}}
helm.sh/chart: {{ include "pagestream.chart" . }}
{{ include "pagestream.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pagestream
{{- end }}

{{- define "pagestream.operator.fullname" -}}
{{- printf "%s-operator" (include "pagestream.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pagestream.operator.labels" -}}
{{ include "pagestream.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "pagestream.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "pagestream.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pagestream.operator.selectorLabels" -}}
{{ include "pagestream.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- /* repository@digest when a digest is given (it wins over the tag), else repository:tag
(the tag defaulting to the chart's appVersion). */}}
{{- define "pagestream.operator.image" -}}
{{- $image := .Values.operator.image -}}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- /* Labels for a data-plane object; `component` names its role. */}}
{{- define "pagestream.componentLabels" -}}
{{ include "pagestream.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* A PageAnalyticsPipeline wired to this release's Kafka and PostgreSQL; used by the
example-pipeline template and printed by NOTES.txt. */}}
{{- define "pagestream.examplePipeline" -}}
{{- $e := .Values.examplePipeline -}}
apiVersion: pagestream.dev/v1alpha1
kind: PageAnalyticsPipeline
metadata:
  name: {{ $e.name }}
  namespace: {{ .Release.Namespace }}
spec:
  kafka:
    strimziCluster:
      name: {{ .Values.kafka.name }}
    topic:
      name: {{ .Values.kafka.topic }}
      manage: true
      replicas: {{ min 3 (int .Values.kafka.replicas) }}
    authentication:
      secretRef:
        name: {{ .Values.kafka.users.pipeline.name }}
  postgres:
    cnpgCluster:
      name: {{ .Values.postgres.name }}
    database: {{ .Values.postgres.database }}
    {{- if .Values.postgres.readerRole.create }}
    readerRole: {{ .Values.postgres.readerRole.name }}
    {{- end }}
  spark:
    image: {{ $e.image }}
    executor:
      instances: {{ $e.executorInstances }}
  processing:
    pii:
      hashKeySecretRef:
        name: {{ $e.piiHashKeySecret }}
  checkpoint:
    persistentVolumeClaim:
      claimName: {{ $e.name }}-checkpoint
  monitoring:
    monitor: ServiceMonitor
{{- end }}

{{/*
Fail when an object the chart is about to create already exists and belongs to no release of
this name: helm would stop with "invalid ownership metadata" otherwise. An object this release
made (its meta.helm.sh annotations and managed-by label say so, as helm checks them, e.g. the checkpoint claim kept by
helm.sh/resource-policy after an uninstall) is adopted as usual. lookup sees nothing under
helm template or a client-side dry run, so those render as before.
Arguments: root (the chart context), apiVersion, kind, name, switch (the value that made it).
*/}}
{{- define "pagestream.refuseForeignObject" -}}
{{- $live := lookup .apiVersion .kind .root.Release.Namespace .name -}}
{{- if $live -}}
{{- $annotations := dig "metadata" "annotations" (dict) $live -}}
{{- $release := get $annotations "meta.helm.sh/release-name" -}}
{{- $namespace := get $annotations "meta.helm.sh/release-namespace" -}}
{{- $managedBy := dig "metadata" "labels" "app.kubernetes.io/managed-by" "" $live -}}
{{- if or (ne $release .root.Release.Name) (ne $namespace .root.Release.Namespace) (ne $managedBy "Helm") -}}
{{- fail (printf "%s: %s %s/%s already exists and was not made by this release (applied from manifests/examples/minimal.yaml?). It is the pipeline this switch creates: keep yours and leave %s false, or delete it first (kubectl -n %s delete -f manifests/examples/minimal.yaml). Another examplePipeline.name would be a second pipeline on the same topic and schema" .switch .kind .root.Release.Namespace .name .switch .root.Release.Namespace) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The ConfigMap listing the data plane objects the operator applies (data-plane.yaml). */}}
{{- define "pagestream.dataPlane.configMapName" -}}
{{- printf "%s-data-plane" (include "pagestream.operator.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end }}

{{/* Whether the operator applies a data plane: the ConfigMap exists. */}}
{{- define "pagestream.dataPlane.byOperator" -}}
{{- if and (eq .Values.dataPlane.appliedBy "operator") (or .Values.kafka.create .Values.postgres.create) -}}true{{- end -}}
{{- end }}
