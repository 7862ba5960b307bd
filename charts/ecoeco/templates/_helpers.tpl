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
DATABASE_URL REDIS_URL AMQP_URL JWT_PRIVATE_KEY JWT_PUBLIC_KEY JWT_PRIVATE_KEY_FILE JWT_PUBLIC_KEY_FILE KAKAO_REST_API_KEY GOOGLE_CLIENT_ID GOOGLE_CLIENT_SECRET KAKAO_CLIENT_ID KAKAO_CLIENT_SECRET MAIL_TRANSPORT FCM_SERVICE_ACCOUNT_JSON S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY
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
{{- if not (has .Values.storage.type (list "volume" "s3")) }}
{{- fail (printf "storage.type must be `volume` or `s3`, not `%s`" .Values.storage.type) }}
{{- end }}
{{- if and (eq .Values.storage.type "s3") (not .Values.storage.s3.bucket) }}
{{- fail "storage.type is s3 but storage.s3.bucket is empty" }}
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
{{- include "ecoeco.storageEnv" . }}
{{- end }}

{{/* Where avatar files are kept (`storage`). */}}
{{- define "ecoeco.storageEnv" -}}
{{- $s := .Values.storage }}
{{- if eq $s.type "s3" }}
- name: STORAGE_URL
  value: {{ printf "s3://%s/%s" $s.s3.bucket $s.s3.prefix | trimSuffix "/" | quote }}
- name: S3_REGION
  value: {{ $s.s3.region | quote }}
{{- with $s.s3.endpoint }}
- name: S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- else }}
- name: STORAGE_URL
  value: "file:/var/lib/ecoeco/objects"
{{- end }}
{{- end }}

{{/* Whether a component mounts the storage volume: the ones that read or write avatar files. */}}
{{- define "ecoeco.usesStorageVolume" -}}
{{- if and (eq .root.Values.storage.type "volume") (has .component (list "command-api" "query-api" "policies")) }}true{{- end }}
{{- end }}

{{- define "ecoeco.storageClaimName" -}}
{{- default (printf "%s-objects" (include "ecoeco.fullname" .)) .Values.storage.volume.existingClaim }}
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
