{{- define "ferrocd-operator.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferrocd-operator.labels" -}}
app.kubernetes.io/name: ferrocd-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ferrocd-operator.selector" -}}
app.kubernetes.io/name: ferrocd-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
