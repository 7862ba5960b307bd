{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "ecoeco.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name; a component's objects are "<fullname>-<component>". */}}
{{- define "ecoeco.fullname" -}}
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

{{- define "ecoeco.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: the Kubernetes recommended set plus helm.sh/chart. ------------------------- */}}

{{- define "ecoeco.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecoeco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ecoeco.labels" -}}
helm.sh/chart: {{ include "ecoeco.chart" . }}
{{ include "ecoeco.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ecoeco
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Called with (dict "root" $ "component" "query-api"). */}}
{{- define "ecoeco.componentSelectorLabels" -}}
{{ include "ecoeco.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ecoeco.componentLabels" -}}
{{ include "ecoeco.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Roles --------------------------------------------------------------------------------- */}}

{{/* The two HTTP APIs run their own binary; every other component is a `workers` group. */}}
{{- define "ecoeco.isApi" -}}
{{- if has . (list "command-api" "query-api") }}true{{ end }}
{{- end }}

{{/* Image, service account, secret ------------------------------------------------------ */}}

{{- define "ecoeco.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "ecoeco.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ecoeco.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret every process reads: the operator's own, or the one this chart renders. */}}
{{- define "ecoeco.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "ecoeco.fullname" . }}
{{- end }}
{{- end }}

{{/* Keys that are secrets: never accepted in `config` (it becomes a ConfigMap). */}}
{{- define "ecoeco.secretKeys" -}}
DATABASE_URL REDIS_URL AMQP_URL JWT_PRIVATE_KEY JWT_PUBLIC_KEY JWT_PRIVATE_KEY_FILE JWT_PUBLIC_KEY_FILE KAKAO_REST_API_KEY GOOGLE_CLIENT_ID GOOGLE_CLIENT_SECRET KAKAO_CLIENT_ID KAKAO_CLIENT_SECRET MAIL_TRANSPORT
{{- end }}

{{/* Keys a production release cannot run without. */}}
{{- define "ecoeco.requiredSecretKeys" -}}
DATABASE_URL REDIS_URL AMQP_URL JWT_PRIVATE_KEY JWT_PUBLIC_KEY
{{- end }}

{{- define "ecoeco.production" -}}
{{- if eq (toString .Values.config.APP_ENV) "production" }}true{{ end }}
{{- end }}

{{/* Fails the render on values that would install something broken or leak a secret. */}}
{{- define "ecoeco.validate" -}}
{{- range $key := splitList " " (include "ecoeco.secretKeys" .) }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s: %s is a secret and config becomes a ConfigMap; put it in `secrets` or in the Secret named by `existingSecret`" $key $key) }}
{{- end }}
{{- end }}
{{- if and (include "ecoeco.production" .) (not .Values.existingSecret) }}
{{- $missing := list }}
{{- range $key := splitList " " (include "ecoeco.requiredSecretKeys" .) }}
{{- if not (index $.Values.secrets $key) }}
{{- $missing = append $missing $key }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "config.APP_ENV is production but no secret is given: set existingSecret to the name of a Secret holding %s (and the optional OAuth, Kakao and MAIL_TRANSPORT keys), or set secrets.* in the values. Missing: %s" (include "ecoeco.requiredSecretKeys" . | replace " " ", ") (join ", " $missing)) }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.rules) }}
{{- fail "ingress.enabled is true but ingress.rules is empty: give at least one {host, service}" }}
{{- end }}
{{- end }}

{{/* Pod pieces ---------------------------------------------------------------------------- */}}

{{- define "ecoeco.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "ecoeco.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Settings every process gets from the chart itself (after envFrom, so they win). */}}
{{- define "ecoeco.fixedEnv" -}}
- name: BIND_ADDR
  value: "0.0.0.0:{{ .Values.containerPort }}"
- name: MIGRATE_ON_START
  value: "false"
{{- end }}

{{/* `config` as an env list, for the pre-install hook (the ConfigMap does not exist yet then). */}}
{{- define "ecoeco.configEnv" -}}
{{- range $k, $v := .Values.config }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/* /tmp is the only writable path (readOnlyRootFilesystem). */}}
{{- define "ecoeco.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "ecoeco.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
