{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "kestra-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name contains it. */}}
{{- define "kestra-operator.fullname" -}}
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

{{- define "kestra-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kestra-operator.labels" -}}
{{ include "kestra-operator.releaseLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The labels of everything the release makes, without the component. */}}
{{- define "kestra-operator.releaseLabels" -}}
helm.sh/chart: {{ include "kestra-operator.chart" . }}
{{ include "kestra-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kestra-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kestra-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kestra-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kestra-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the Kestra credentials: the existing one, or the chart's. Empty: none. */}}
{{- define "kestra-operator.credentialsSecret" -}}
{{- if .Values.operator.existingSecret }}
{{- .Values.operator.existingSecret }}
{{- else if or .Values.operator.apiKey .Values.operator.basicAuth }}
{{- include "kestra-operator.fullname" . }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: asked for, or more than one replica. */}}
{{- define "kestra-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "kestra-operator.leaseName" -}}
{{- default (include "kestra-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Fails on contradictory values; renders nothing otherwise. */}}
{{- define "kestra-operator.validate" -}}
{{- $op := .Values.operator }}
{{- if and $op.apiKey $op.basicAuth }}
{{- fail "operator.apiKey and operator.basicAuth are both set: set one of them" }}
{{- end }}
{{- if and $op.existingSecret (or $op.apiKey $op.basicAuth) }}
{{- fail "operator.existingSecret is set together with operator.apiKey or operator.basicAuth: the credentials come from one place, set only one" }}
{{- end }}
{{- if not .Values.kestra.url }}
{{- fail "kestra.url is required: Kestra's root URL, e.g. http://kestra:8080" }}
{{- end }}
{{- if not (has .Values.logFormat (list "text" "json")) }}
{{- fail (printf "logFormat must be text or json, not %q" (toString .Values.logFormat)) }}
{{- end }}
{{- if lt (int .Values.replicas) 1 }}
{{- fail "replicas must be at least 1" }}
{{- end }}
{{- end }}

{{/* The rules the operator needs in the namespaces it watches (ClusterRole or per-namespace Role). */}}
{{- define "kestra-operator.watchRules" -}}
# The operator writes only with PATCH: finalizers (JSON patch), status (server-side apply),
# Events (create, then merge patch for a series). The e2e chart tests run it with exactly these.
- apiGroups: ["model.kestra.io"]
  resources: ["kestraflows", "kestrakeyvalues", "kestranamespacefiles"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["model.kestra.io"]
  resources: ["kestraflows/status", "kestrakeyvalues/status", "kestranamespacefiles/status"]
  verbs: ["patch"]
# KestraInstances: watched by every replica (never read one by one); the leader adds and removes
# the finalizer (JSON patch) and applies the status
- apiGroups: ["model.kestra.io"]
  resources: ["kestrainstances"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["model.kestra.io"]
  resources: ["kestrainstances/status"]
  verbs: ["patch"]
# values referenced by valueFrom/sourceFrom/contentFrom and by a KestraInstance's auth and
# caBundleRef (watched metadata-only, read on use)
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* "true" when the Roles of the watched namespaces (or the ClusterRole) already grant `namespace`
   the watch rules: all namespaces are watched, or this one is listed. */}}
{{- define "kestra-operator.watches" -}}
{{- $ns := index . 0 }}
{{- $values := index . 1 }}
{{- if or (not $values.watchNamespaces) (has $ns $values.watchNamespaces) }}true{{ end }}
{{- end }}

{{/* The webhook's Service, Certificate and Secret name. */}}
{{- define "kestra-operator.webhookName" -}}
{{- printf "%s-webhook" (include "kestra-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ValidatingWebhookConfiguration (cluster-wide, so named after the namespace too). */}}
{{- define "kestra-operator.webhookConfiguration" -}}
{{- printf "%s-%s" .Release.Namespace (include "kestra-operator.fullname" .) | trunc 253 }}
{{- end }}
