{{- define "ecoeco.labels" -}}
app.kubernetes.io/name: ecoeco
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
