{{- define "pagestream.dataPlane.postgres" }}
{{- if .Values.postgres.create }}
{{- $p := .Values.postgres }}
# A CloudNativePG cluster. The operator generates the application user's password into the
# Secret `<name>-app` (keys username, password, host, port, dbname, uri, ...), which the
# pipeline and Grafana's datasource reference by name.
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: {{ $p.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "pagestream.componentLabels" (dict "root" . "component" "postgres") | nindent 4 }}
spec:
  instances: {{ $p.instances }}
  {{- with $p.imageName }}
  imageName: {{ . }}
  {{- end }}
  bootstrap:
    initdb:
      database: {{ $p.database }}
      owner: {{ $p.owner }}
  storage:
    size: {{ $p.storage.size }}
    {{- with $p.storage.class }}
    storageClass: {{ . }}
    {{- end }}
  resources:
    {{- toYaml $p.resources | nindent 4 }}
  {{- if $p.readerRole.create }}
  # The dashboards' read-only login; each pipeline grants it its own schema (readerRole).
  managed:
    roles:
      - name: {{ $p.readerRole.name }}
        ensure: present
        login: true
        comment: read-only access for pagestream dashboards
        # A kubernetes.io/basic-auth Secret you create (username = the role's name): the chart
        # renders no passwords. Until it exists CloudNativePG cannot create the role, and a
        # pipeline that names it waits for it at start.
        passwordSecret:
          name: {{ $p.readerRole.passwordSecret }}
  {{- end }}
{{- end }}
{{- end }}
