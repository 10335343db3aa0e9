{{/* vim: set filetype=mustache: */}}
{{/*
Expand the name of the chart.
*/}}
{{- define "polo-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Create a default fully qualified app name.
Truncated at 63 chars because some Kubernetes name fields are limited to this (DNS naming spec).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "polo-exporter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Namespace of the objects.
*/}}
{{- define "polo-exporter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/*
Chart name and version as used by the chart label.
*/}}
{{- define "polo-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels.
*/}}
{{- define "polo-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "polo-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Common labels.
*/}}
{{- define "polo-exporter.labels" -}}
helm.sh/chart: {{ include "polo-exporter.chart" . }}
{{ include "polo-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: metrics
app.kubernetes.io/part-of: polo
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Name of the ServiceAccount to use.
*/}}
{{- define "polo-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "polo-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference.
*/}}
{{- define "polo-exporter.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Name of the Secret holding the ClickHouse password, empty when there is no password.
*/}}
{{- define "polo-exporter.passwordSecret" -}}
{{- if .Values.clickhousePassword.existingSecret -}}
{{- .Values.clickhousePassword.existingSecret -}}
{{- else if .Values.clickhousePassword.value -}}
{{- printf "%s-clickhouse" (include "polo-exporter.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The exporter configuration: .Values.config with `clickhouse.password_env` set when a password
Secret is configured. Fails on an inline password (it would land in a ConfigMap).
*/}}
{{- define "polo-exporter.config" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- $ch := get $config "clickhouse" | default dict -}}
{{- if or (hasKey $ch "password") (hasKey $ch "password_file") (hasKey $ch "password_env") -}}
{{- fail "config.clickhouse: set the password through clickhousePassword (existingSecret or value), not password, password_file or password_env" -}}
{{- end -}}
{{- if include "polo-exporter.passwordSecret" . -}}
{{- $_ := set $ch "password_env" .Values.clickhousePassword.envVar -}}
{{- $_ := set $config "clickhouse" $ch -}}
{{- end -}}
{{- if and (eq (include "polo-exporter.awsCost" .) "true") (ne .Values.stateVolume.type "none") -}}
{{- $sources := get $config "sources" | default dict -}}
{{- $cost := get $sources "aws_cost" | default dict -}}
{{- if not (hasKey $cost "state_file") -}}
{{- $_ := set $cost "state_file" (printf "%s/aws_cost.json" (trimSuffix "/" .Values.stateVolume.mountPath)) -}}
{{- $_ := set $sources "aws_cost" $cost -}}
{{- $_ := set $config "sources" $sources -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
"true" when the aws_cost source is on (config.sources.aws_cost.enabled).
*/}}
{{- define "polo-exporter.awsCost" -}}
{{- $sources := get (.Values.config | default dict) "sources" | default dict -}}
{{- $cost := get $sources "aws_cost" | default dict -}}
{{- if eq (toString (get $cost "enabled")) "true" -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/*
"true" when the cost rules are shipped: prometheusRule.costRules, or by default with the aws_cost source.
*/}}
{{- define "polo-exporter.costRules" -}}
{{- $set := toString .Values.prometheusRule.costRules -}}
{{- if ne $set "" -}}
{{- $set -}}
{{- else -}}
{{- include "polo-exporter.awsCost" . -}}
{{- end -}}
{{- end -}}

{{/*
The state volume of the pod (stateVolume), empty with type none.
*/}}
{{- define "polo-exporter.stateVolume" -}}
{{- if eq .Values.stateVolume.type "emptyDir" }}
- name: state
  emptyDir:
    sizeLimit: {{ .Values.stateVolume.sizeLimit }}
{{- else if eq .Values.stateVolume.type "persistentVolumeClaim" }}
- name: state
  persistentVolumeClaim:
    claimName: {{ .Values.stateVolume.existingClaim | default (printf "%s-state" (include "polo-exporter.fullname" .)) }}
{{- end }}
{{- end -}}

{{/*
Name of the Secret holding the web configuration.
*/}}
{{- define "polo-exporter.webConfigSecret" -}}
{{- default (printf "%s-web-config" (include "polo-exporter.fullname" .)) .Values.webConfig.existingSecret -}}
{{- end -}}

{{/*
Scheme of the exporter's endpoint: HTTP or HTTPS.
*/}}
{{- define "polo-exporter.scheme" -}}
{{- if not .Values.webConfig.enabled -}}
HTTP
{{- else if .Values.webConfig.scheme -}}
{{- .Values.webConfig.scheme | upper -}}
{{- else if hasKey (.Values.webConfig.config | default dict) "tls_server_config" -}}
HTTPS
{{- else -}}
HTTP
{{- end -}}
{{- end -}}

{{/*
"true" when every request needs credentials the kubelet cannot give (basic auth, client certificate).
*/}}
{{- define "polo-exporter.authRequired" -}}
{{- if .Values.webConfig.enabled -}}
{{- $set := toString .Values.webConfig.authRequired -}}
{{- if ne $set "" -}}
{{- $set -}}
{{- else -}}
{{- $web := .Values.webConfig.config | default dict -}}
{{- $tls := get $web "tls_server_config" | default dict -}}
{{- if or (get $web "basic_auth_users") (eq (toString (get $tls "client_auth_type")) "RequireAndVerifyClientCert") -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/*
"true" when the web configuration requires a client certificate (the kubelet cannot present one).
*/}}
{{- define "polo-exporter.clientCertRequired" -}}
{{- $web := .Values.webConfig.config | default dict -}}
{{- $tls := get $web "tls_server_config" | default dict -}}
{{- if and .Values.webConfig.enabled (eq (toString (get $tls "client_auth_type")) "RequireAndVerifyClientCert") -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/*
The probes' `Authorization: Basic ...` value from webConfig.probeAuth (password, or an existing
Secret read with lookup at install/upgrade), empty when none is configured. A probe's httpHeaders
take literal values only: a Secret cannot be referenced there.
*/}}
{{- define "polo-exporter.probeAuthorization" -}}
{{- $pa := .Values.webConfig.probeAuth | default dict -}}
{{- if and .Values.webConfig.enabled $pa.existingSecret -}}
{{- $ns := include "polo-exporter.namespace" . -}}
{{- $secret := lookup "v1" "Secret" $ns $pa.existingSecret -}}
{{- if not $secret -}}
{{- fail (printf "webConfig.probeAuth.existingSecret: Secret %s/%s not found (helm template and --dry-run cannot read Secrets: set webConfig.probeAuth.username and password instead)" $ns $pa.existingSecret) -}}
{{- end -}}
{{- $user := index ($secret.data | default dict) "username" | default "" | b64dec -}}
{{- $password := index ($secret.data | default dict) "password" | default "" | b64dec -}}
{{- if or (not $user) (not $password) -}}
{{- fail (printf "webConfig.probeAuth.existingSecret: Secret %s/%s needs the keys username and password" $ns $pa.existingSecret) -}}
{{- end -}}
{{- printf "Basic %s" (printf "%s:%s" $user $password | b64enc) -}}
{{- else if and .Values.webConfig.enabled $pa.password -}}
{{- if not $pa.username -}}
{{- fail "webConfig.probeAuth.password needs webConfig.probeAuth.username" -}}
{{- end -}}
{{- printf "Basic %s" (printf "%s:%s" $pa.username $pa.password | b64enc) -}}
{{- end -}}
{{- end -}}

{{/*
A probe on `path`: HTTP(S) GET (with the probes' basic-auth header when configured), or a TCP
connection when requests need credentials the probe does not have (a client certificate, or basic
auth without webConfig.probeAuth).
*/}}
{{- define "polo-exporter.probe" -}}
{{- $ctx := index . 0 -}}
{{- $path := index . 1 -}}
{{- $authorization := include "polo-exporter.probeAuthorization" $ctx -}}
{{- if or (eq (include "polo-exporter.clientCertRequired" $ctx) "true") (and (eq (include "polo-exporter.authRequired" $ctx) "true") (not $authorization)) }}
tcpSocket:
  port: {{ $ctx.Values.service.portName }}
{{- else }}
httpGet:
  path: {{ $path }}
  port: {{ $ctx.Values.service.portName }}
  scheme: {{ include "polo-exporter.scheme" $ctx }}
  {{- with $authorization }}
  httpHeaders:
    - name: Authorization
      value: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end -}}
