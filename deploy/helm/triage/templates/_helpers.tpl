{{/* Names, labels and the pieces every triage pod shares. */}}

{{- define "triage.name" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "triage.labels" -}}
app.kubernetes.io/name: triage
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "triage.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* The consumer group of a role, as core/topology.py names it, with the topic prefix. */}}
{{- define "triage.group" -}}
{{- printf "%s%s" .root.Values.kafka.topicPrefix .group -}}
{{- end -}}

{{- define "triage.secretName" -}}
{{- .Values.kafka.sasl.existingSecret | default (printf "%s-kafka-sasl" .Release.Name) -}}
{{- end -}}

{{/* TRIAGE_* environment: the connection, the topic prefix, metrics, the pod's own name. */}}
{{- define "triage.env" -}}
{{- $k := .root.Values.kafka -}}
- name: TRIAGE_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: TRIAGE_TOPIC_PREFIX
  value: {{ $k.topicPrefix | quote }}
- name: TRIAGE_TOPIC_PARTITIONS
  value: {{ $k.partitions | quote }}
- name: TRIAGE_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if not .httpServer }}{{/* the gateway serves /metrics on its own HTTP port */}}
- name: TRIAGE_METRICS_HOST
  value: "0.0.0.0"
- name: TRIAGE_METRICS_PORT
  value: {{ .port | default .root.Values.metrics.port | quote }}
{{- end }}
- name: TRIAGE_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL" $k.securityProtocol }}
- name: TRIAGE_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: TRIAGE_SASL_USERNAME
  value: {{ $k.sasl.username | quote }}
- name: TRIAGE_SASL_PASSWORD_FILE
  value: /etc/triage/sasl/{{ $k.sasl.passwordKey }}
{{- end }}
{{- if $k.tls.caSecret }}
- name: TRIAGE_SSL_CAFILE
  value: /etc/triage/tls/{{ $k.tls.caKey }}
- name: TRIAGE_SSL_CHECK_HOSTNAME
  value: {{ $k.tls.checkHostname | quote }}
{{- end }}
{{- end -}}

{{- define "triage.volumeMounts" -}}
{{- $k := .root.Values.kafka -}}
{{- if hasPrefix "SASL" $k.securityProtocol }}
- name: sasl
  mountPath: /etc/triage/sasl
  readOnly: true
{{- end }}
{{- if $k.tls.caSecret }}
- name: tls
  mountPath: /etc/triage/tls
  readOnly: true
{{- end }}
{{- if and .models .root.Values.models.volume }}
- name: models
  mountPath: /models
  readOnly: true
{{- end }}
{{- end -}}

{{- define "triage.volumes" -}}
{{- $k := .root.Values.kafka -}}
{{- if hasPrefix "SASL" $k.securityProtocol }}
- name: sasl
  secret:
    secretName: {{ include "triage.secretName" .root }}
{{- end }}
{{- if $k.tls.caSecret }}
- name: tls
  secret:
    secretName: {{ $k.tls.caSecret }}
{{- end }}
{{- if and .models .root.Values.models.volume }}
- name: models
  {{- toYaml .root.Values.models.volume | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A triage pod: the one image, `triage <args>`, probes on its metrics (or gateway) port. */}}
{{- define "triage.podTemplate" -}}
metadata:
  labels:
    {{- include "triage.labels" . | nindent 4 }}
  {{- if .root.Values.metrics.annotations }}
  annotations:
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .port | default .root.Values.metrics.port | quote }}
    prometheus.io/path: /metrics
  {{- end }}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 65534
  containers:
    - name: {{ .container | default "triage" }}
      image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
      imagePullPolicy: {{ .root.Values.image.pullPolicy }}
      args: {{ toJson .args }}
      env:
        {{- include "triage.env" . | nindent 8 }}
      ports:
        - name: metrics
          containerPort: {{ .port | default .root.Values.metrics.port }}
      {{- /* Services without HTTP health endpoints restart themselves when their loop stalls
           (core/liveness.py); the probes see that the metrics server answers. */}}
      livenessProbe:
        httpGet:
          path: {{ .liveness | default "/metrics" }}
          port: metrics
        initialDelaySeconds: 30
        periodSeconds: 20
        failureThreshold: 6
      readinessProbe:
        httpGet:
          path: {{ .readiness | default "/metrics" }}
          port: metrics
        periodSeconds: 10
      {{- with .resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "triage.volumeMounts" . }}
      volumeMounts:
        {{- . | nindent 8 }}
      {{- end }}
  {{- with include "triage.volumes" . }}
  volumes:
    {{- . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* KEDA ScaledObject on a group's lag; replicas capped at the topic's partitions. */}}
{{- define "triage.scaledObject" -}}
{{- $v := .root.Values -}}
{{- if $v.autoscaling.enabled }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "triage.name" . }}
  labels:
    {{- include "triage.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ .kind }}
    name: {{ include "triage.name" . }}
  minReplicaCount: {{ $v.autoscaling.minReplicaCount }}
  maxReplicaCount: {{ min $v.autoscaling.maxReplicaCount $v.kafka.partitions }}
  pollingInterval: {{ $v.autoscaling.pollingInterval }}
  cooldownPeriod: {{ $v.autoscaling.cooldownPeriod }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ $v.kafka.bootstrapServers | quote }}
        consumerGroup: {{ include "triage.group" . | quote }}
        topic: {{ printf "%s%s" $v.kafka.topicPrefix .topic | quote }}
        lagThreshold: {{ $v.autoscaling.lagThreshold | quote }}
        offsetResetPolicy: earliest
        {{- if hasPrefix "SASL" $v.kafka.securityProtocol }}
        sasl: {{ get (dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512") $v.kafka.sasl.mechanism }}
        {{- end }}
        {{- if hasSuffix "SSL" $v.kafka.securityProtocol }}
        tls: enable
        {{- end }}
      {{- if or (hasPrefix "SASL" $v.kafka.securityProtocol) $v.kafka.tls.caSecret }}
      authenticationRef:
        name: {{ .root.Release.Name }}-kafka
      {{- end }}
{{- end }}
{{- end -}}

{{- define "triage.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "triage.name" . }}
  labels:
    {{- include "triage.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "triage.selector" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A Service for the metrics port (what a ServiceMonitor selects), and the ServiceMonitor. */}}
{{- define "triage.metricsService" -}}
{{- if .root.Values.metrics.serviceMonitors.enabled }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "triage.name" . }}-metrics
  labels:
    {{- include "triage.labels" . | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "triage.selector" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .port | default .root.Values.metrics.port }}
      targetPort: metrics
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "triage.name" . }}
  labels:
    {{- include "triage.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "triage.selector" . | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ .root.Values.metrics.serviceMonitors.interval }}
{{- end }}
{{- end -}}
