{{/* The daemon's name: the release's, unless it is sonde already. */}}
{{- define "sonde.fullname" -}}
{{- if eq .Release.Name "sonde" -}}sonde{{- else -}}{{ printf "%s-sonde" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "sonde.agentName" -}}
{{ include "sonde.fullname" . }}-agent
{{- end -}}

{{- define "sonde.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "sonde.labels" -}}
app.kubernetes.io/part-of: sonde
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
