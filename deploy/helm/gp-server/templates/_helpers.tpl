{{/*
Names and labels shared by the templates.  Values reach YAML only through quote / toYaml /
toJson, never as bare text.
*/}}

{{/* The chart's name (nameOverride), a DNS label. */}}
{{- define "gp-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name: fullnameOverride, else the release name followed by
the chart's name unless the release name contains it. */}}
{{- define "gp-server.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "gp-server.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects are shared by every namespace: their names carry the release
namespace, so two releases of the same name in two namespaces do not collide. */}}
{{- define "gp-server.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "gp-server.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ClusterRole the server binds in each kernel's namespace (per-kernel mode). */}}
{{- define "gp-server.kernelClusterRole" -}}
{{- printf "%s-kernel" (include "gp-server.clusterName" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "gp-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gp-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gp-server.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "gp-server.labels" -}}
helm.sh/chart: {{ include "gp-server.chart" . | quote }}
{{ include "gp-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: gateway-provisioners
{{- end -}}

{{/* The kernels' namespace of shared mode. */}}
{{- define "gp-server.kernelNamespace" -}}
{{- .Values.kernelNamespace.name -}}
{{- end -}}

{{- define "gp-server.perKernel" -}}
{{- if eq .Values.kernelNamespace.mode "per-kernel" -}}true{{- end -}}
{{- end -}}

{{- define "gp-server.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "gp-server.tokenSecret" -}}
{{- default (printf "%s-token" (include "gp-server.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* What kernels answer to: server.responseAddress, else the response Service's DNS name. */}}
{{- define "gp-server.responseAddress" -}}
{{- default (printf "%s-response.%s.svc" (include "gp-server.fullname" .) .Release.Namespace) .Values.server.responseAddress -}}
{{- end -}}

{{/* Checks the schema cannot express. */}}
{{- define "gp-server.validate" -}}
{{- if eq (int .Values.ports.http) (int .Values.ports.response) -}}
{{- fail (printf "ports.http and ports.response are both %d: give the response port another number" (int .Values.ports.http)) -}}
{{- end -}}
{{- if and (not (include "gp-server.perKernel" .)) (eq .Values.kernelNamespace.name .Release.Namespace) -}}
{{- fail (printf "kernelNamespace.name %q is the release namespace: kernels go in a namespace of their own (the server's account gets nothing in its own)" .Values.kernelNamespace.name) -}}
{{- end -}}
{{- if hasKey (.Values.env | default dict) "JUPYTER_TOKEN" -}}
{{- fail "env.JUPYTER_TOKEN: the token comes from a Secret, never from values; set auth.existingSecret (or leave it empty for a generated one)" -}}
{{- end -}}
{{- range .Values.extraEnv -}}
{{- if eq .name "JUPYTER_TOKEN" -}}
{{- fail "extraEnv JUPYTER_TOKEN: the chart sets it from auth.existingSecret (or a generated Secret); set that instead" -}}
{{- end -}}
{{- end -}}
{{- $seen := dict -}}
{{- range .Values.kernelspecs -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "kernelspecs: the name %q is given twice: one entry per kernelspec" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- end -}}
{{- end -}}
