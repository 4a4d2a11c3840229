{{/* The release's full name: the release name, with "-kconn" unless it already holds "kconn". */}}
{{- define "kconn.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kconn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kconn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kconn.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kconn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kconn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: set it to an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces watched, comma-separated; empty with clusterWide (every namespace). */}}
{{- define "kconn.watchNamespaces" -}}
{{- if hasKey .Values "watchNamespace" -}}
{{- fail "watchNamespace was replaced by watchNamespaces, a list: --set watchNamespaces={NAME} (or clusterWide=true for every namespace)" -}}
{{- end -}}
{{- if and .Values.clusterWide .Values.watchNamespaces -}}
{{- fail "set either watchNamespaces or clusterWide=true, not both" -}}
{{- end -}}
{{- if not .Values.clusterWide -}}
{{- default (list .Release.Namespace) .Values.watchNamespaces | join "," -}}
{{- end -}}
{{- end -}}

{{/* What the operator does in the namespaces it watches. Kept equal to the Role in the README. */}}
{{- define "kconn.watchRules" -}}
- apiGroups: [kconn.dev]
  resources: [kafkaconnections]
  verbs: [get, list, watch]
- apiGroups: [kconn.dev]
  resources: [kafkaconnections/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [secrets]
  {{- if .Values.secretWatch }}
  verbs: [get, list, watch]
  {{- else }}
  verbs: [get]
  {{- end }}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, create, patch, delete]
{{- if .Values.bindings }}
# Binding Secrets (spec.binding): written only when the connection owns them.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch, delete]
{{- end }}
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "kconn.leaseNamespace" -}}
{{- default .Release.Namespace .Values.agent.leaseNamespace -}}
{{- end -}}
