{{/*
The templates below that an application's chart includes (sidecar mode)
take a context with only .Values (this chart's values) and .Release:
    (dict "Values" .Values.auditpipe "Release" .Release)
so they use neither .Chart nor .Capabilities, which would be the
application's.
*/}}

{{- define "auditpipe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "auditpipe" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-auditpipe" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "auditpipe.selectorLabels" -}}
app.kubernetes.io/name: auditpipe
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{/* Labels of the chart's own objects (these have .Chart). */}}
{{- define "auditpipe.labels" -}}
{{ include "auditpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "auditpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "auditpipe.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "auditpipe.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* Where the pieces are mounted; the config refers to these paths. */}}
{{- define "auditpipe.dataDir" -}}/var/lib/auditpipe{{- end -}}
{{- define "auditpipe.configDir" -}}/etc/auditpipe/config{{- end -}}
{{- define "auditpipe.tlsDir" -}}/etc/auditpipe/tls{{- end -}}
{{- define "auditpipe.secretsDir" -}}/etc/auditpipe/secrets{{- end -}}

{{- define "auditpipe.scheme" -}}
{{- if .Values.tls.secretName }}https{{ else }}http{{ end -}}
{{- end -}}

{{/*
config.yaml: the values' config with what the chart owns set. A value the
user set for one of those keys fails the render rather than being
silently replaced.
*/}}
{{- define "auditpipe.configYAML" -}}
{{- if not (has .Values.mode (list "gateway" "sidecar")) -}}
{{- fail (printf "mode: %q is neither gateway nor sidecar" (toString .Values.mode)) -}}
{{- end -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- if not (get $cfg "sources") -}}
{{- fail "config.sources: list at least one source, with its auth (the chart's ci/*-values.yaml show some)" -}}
{{- end -}}
{{- if hasKey $cfg "data_dir" -}}
{{- fail (printf "config.data_dir: set by the chart (the queue volume at %s); remove it" (include "auditpipe.dataDir" .)) -}}
{{- end -}}
{{- $server := get $cfg "server" | default dict -}}
{{- if hasKey $server "listen" -}}
{{- fail "config.server.listen: set by the chart (0.0.0.0:<port>); set port instead" -}}
{{- end -}}
{{- $_ := set $cfg "data_dir" (include "auditpipe.dataDir" .) -}}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.port)) -}}
{{- if .Values.tls.secretName -}}
{{- $tls := get $server "tls" | default dict -}}
{{- if or (hasKey $tls "cert_file") (hasKey $tls "key_file") -}}
{{- fail "config.server.tls: cert_file and key_file are set by the chart from tls.secretName; remove them" -}}
{{- end -}}
{{- if hasKey $tls "client_ca_file" -}}
{{- fail "config.server.tls.client_ca_file: the kubelet's HTTP probes present no client certificate, so a pod requiring one would never be ready" -}}
{{- end -}}
{{- $_ := set $tls "cert_file" (printf "%s/tls.crt" (include "auditpipe.tlsDir" .)) -}}
{{- $_ := set $tls "key_file" (printf "%s/tls.key" (include "auditpipe.tlsDir" .)) -}}
{{- $_ := set $server "tls" $tls -}}
{{- end -}}
{{- $_ := set $cfg "server" $server -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
auditpipe.seconds: a Go duration (dict "key" PATH "value" D) in whole
seconds, rounded up. It fails naming the key when D is not a duration.
*/}}
{{- define "auditpipe.seconds" -}}
{{- $d := toString .value -}}
{{- $num := "[0-9]+(\\.[0-9]*)?" -}}
{{- $unit := "(ns|us|µs|ms|s|m|h)" -}}
{{- if not (regexMatch (printf "^(%s%s)+$" $num $unit) $d) -}}
{{- fail (printf "%s: %q is not a duration such as 90s or 2m30s" .key $d) -}}
{{- end -}}
{{- $scale := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll (printf "%s%s" $num $unit) $d -1 -}}
{{- $n := regexFind (printf "^%s" $num) . -}}
{{- $total = addf $total (mulf (float64 $n) (get $scale (trimPrefix $n .))) -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}

{{- define "auditpipe.drainSeconds" -}}
{{- if .Values.drain.enabled -}}
{{- include "auditpipe.seconds" (dict "key" "drain.timeout" "value" .Values.drain.timeout) -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/*
auditpipe.terminationGracePeriodSeconds: the preStop drain, then SIGTERM
and server.shutdown_grace, then 10s for the process to close its files
and exit. A smaller terminationGracePeriodSeconds fails the render.
*/}}
{{- define "auditpipe.terminationGracePeriodSeconds" -}}
{{- $server := (.Values.config | default dict).server | default dict -}}
{{- $grace := include "auditpipe.seconds" (dict "key" "config.server.shutdown_grace" "value" ($server.shutdown_grace | default "25s")) | int -}}
{{- $need := add (include "auditpipe.drainSeconds" . | int) $grace 10 -}}
{{- $set := .Values.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $set -}}
{{- $need -}}
{{- else if lt (int $set) $need -}}
{{- fail (printf "terminationGracePeriodSeconds: %d is less than drain.timeout + config.server.shutdown_grace + 10s = %ds; the kubelet would kill the sidecar before its queue is delivered or its cursors persisted" (int $set) $need) -}}
{{- else -}}
{{- int $set -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations: the config's checksum, unless hot reload is on. */}}
{{- define "auditpipe.podAnnotations" -}}
{{- if not .Values.reload.enabled -}}
checksum/config: {{ include "auditpipe.configYAML" . | sha256sum }}
{{- end -}}
{{- end -}}

{{- define "auditpipe.httpGet" -}}
httpGet:
  path: {{ .path }}
  port: http
  scheme: {{ .scheme | upper }}
{{- end -}}

{{/* The sidecar container, in either mode. */}}
{{- define "auditpipe.container" -}}
{{- $scheme := include "auditpipe.scheme" . -}}
name: auditpipe
image: {{ include "auditpipe.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
{{- if eq .Values.mode "sidecar" }}
# A native sidecar: started, and ready, before the application's
# containers; stopped after them.
restartPolicy: Always
{{- end }}
args:
  - sidecar
  - --config
  - {{ include "auditpipe.configDir" . }}/config.yaml
  {{- if .Values.reload.enabled }}
  - --enable-reload
  {{- end }}
ports:
  - name: http
    containerPort: {{ int .Values.port }}
    protocol: TCP
env:
  # Labels on every event (pod_labels): pod, namespace, node.
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
  - name: NODE_NAME
    valueFrom:
      fieldRef:
        fieldPath: spec.nodeName
  {{- with .Values.goMemLimit }}
  - name: GOMEMLIMIT
    value: {{ . | quote }}
  {{- end }}
  {{- with .Values.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
startupProbe:
  {{- include "auditpipe.httpGet" (dict "path" "/healthz" "scheme" $scheme) | nindent 2 }}
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  {{- include "auditpipe.httpGet" (dict "path" "/healthz" "scheme" $scheme) | nindent 2 }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  {{- include "auditpipe.httpGet" (dict "path" "/readyz" "scheme" $scheme) | nindent 2 }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- if .Values.drain.enabled }}
lifecycle:
  preStop:
    exec:
      command:
        - /auditpipe
        - drain
        - --url
        - {{ printf "%s://127.0.0.1:%d" $scheme (int .Values.port) }}
        - --timeout
        - {{ include "auditpipe.drainSeconds" . }}s
        {{- if .Values.tls.secretName }}
        - --server-name
        - {{ .Values.tls.serverName | default (printf "%s.%s.svc" (include "auditpipe.fullname" .) .Release.Namespace) }}
        {{- with .Values.tls.caKey }}
        - --ca-file
        - {{ include "auditpipe.tlsDir" $ }}/{{ . }}
        {{- end }}
        {{- end }}
{{- end }}
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: auditpipe-config
    mountPath: {{ include "auditpipe.configDir" . }}
    readOnly: true
  {{- range $i, $s := .Values.secrets }}
  - name: auditpipe-secret-{{ $i }}
    mountPath: {{ include "auditpipe.secretsDir" $ }}/{{ $s.name }}
    readOnly: true
  {{- end }}
  {{- if .Values.tls.secretName }}
  - name: auditpipe-tls
    mountPath: {{ include "auditpipe.tlsDir" . }}
    readOnly: true
  {{- end }}
  # The only place auditpipe writes.
  - name: auditpipe-data
    mountPath: {{ include "auditpipe.dataDir" . }}
{{- end -}}

{{/* The container as an item of a list. */}}
{{- define "auditpipe.containerItem" -}}
- {{ include "auditpipe.container" . | indent 2 | trim }}
{{- end -}}

{{/* The pod's volumes but the queue's. */}}
{{- define "auditpipe.configVolumes" -}}
# No subPath: the kubelet keeps the mounted config.yaml up to date, which
# hot reload relies on.
- name: auditpipe-config
  configMap:
    name: {{ include "auditpipe.fullname" . }}
    defaultMode: 0440
{{- range $i, $s := .Values.secrets }}
{{- with $s }}
{{- if not .name }}
{{- fail (printf "secrets[%d].name: the name of an existing Secret is required" $i) }}
{{- end }}
- name: auditpipe-secret-{{ $i }}
  secret:
    secretName: {{ .name }}
    defaultMode: 0440
    {{- with .items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- end }}
{{- if .Values.tls.secretName }}
- name: auditpipe-tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/*
Sidecar mode, for the application's chart (see README.md):

  metadata:
    annotations:
      {{- include "auditpipe.podAnnotations" $ap | nindent 8 }}
  spec:
    terminationGracePeriodSeconds: ... at least auditpipe.terminationGracePeriodSeconds
    initContainers:
      {{- include "auditpipe.sidecarContainer" $ap | nindent 8 }}
    volumes:
      {{- include "auditpipe.sidecarVolumes" $ap | nindent 8 }}

with $ap := dict "Values" .Values.auditpipe "Release" .Release.
*/}}
{{- define "auditpipe.sidecarContainer" -}}
{{- if ne .Values.mode "sidecar" -}}
{{- fail "auditpipe.sidecarContainer: set mode: sidecar in the auditpipe values (gateway mode runs its own StatefulSet)" -}}
{{- end -}}
{{- include "auditpipe.containerItem" . -}}
{{- end -}}

{{- define "auditpipe.sidecarVolumes" -}}
{{- include "auditpipe.configVolumes" . }}
- name: auditpipe-data
  {{- toYaml .Values.sidecar.dataVolume | nindent 2 }}
{{- end -}}
