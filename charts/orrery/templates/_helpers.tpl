{{- define "orrery.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orrery.labels" -}}
app.kubernetes.io/name: orrery
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "orrery.apiURL" -}}
{{- .Values.api.url | default (printf "http://%s-api.%s.svc:%v" (include "orrery.fullname" .) .Release.Namespace .Values.api.port) -}}
{{- end -}}

{{/* The Secret holding the API's admin (and read) token. */}}
{{- define "orrery.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "orrery.fullname" .)) -}}
{{- end -}}

{{/* A container under the restricted Pod Security Standard: no privilege escalation, no
capabilities, a read-only root file system. */}}
{{- define "orrery.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
readOnlyRootFilesystem: true
{{- end }}
