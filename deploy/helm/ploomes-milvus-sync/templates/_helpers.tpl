{{/*
Names and labels.
*/}}
{{- define "pms.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pms.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ploomes-milvus-sync
{{- end -}}

{{/* selector labels of one component: (dict "root" $ "name" "tasks-to-milvus") */}}
{{- define "pms.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "pms.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
What each binary reads (its --help; tests/deploy/check_chart.py checks these lists against the
built binaries), which secrets it needs, and a worker's source topic (without TOPIC_PREFIX).
METRICS_PORT is set by the chart itself (the probes' port).
*/}}
{{- define "pms.components" -}}
{{- $common := list "KAFKA_BOOTSTRAP_SERVERS" "TOPIC_PREFIX" "TOPIC_PARTITIONS" "KAFKA_MAX_MESSAGE_BYTES" "MONGODB_URI" "HTTP_TIMEOUT_MS" "LOG_LEVEL" -}}
{{- $worker := list "MILVUS_MIN_ID" "SYNC_SINCE" "MAX_ATTEMPTS" "RETRY_BASE_MS" "RETRY_MAX_MS" "MAX_IN_FLIGHT" "CLAIM_LEASE_SECONDS" "DRY_RUN" -}}
{{- $tickets := list "TICKET_TAGS" "TICKETS_SINCE" "TICKET_LOOKBACK_MINUTES" "TICKET_MAX_AGE_MINUTES" "TICKET_DESCRIPTION_MAX" "TICKET_MESA" "TICKET_SETOR" "TICKET_TECNICO" "TICKET_CATEGORIA_SECUNDARIA" -}}
{{- $ploomes := list "PLOOMES_BASE_URL" "PLOOMES_RATE_PER_MIN" "PLOOMES_403_PAUSE_MS" -}}
{{- $milvus := list "MILVUS_BASE_URL" "MILVUS_RATE_PER_MIN" -}}
{{- $producer := list "PLOOMES_SCAN_QUOTA_SHARE" "PLOOMES_ENTITIES" "MILVUS_SCAN_QUOTA_SHARE" "MILVUS_MAX_PAGES" "MILVUS_MIN_ID" "SYNC_SINCE" "POLL_INTERVAL_SECONDS" "PRODUCER_LEASE_SECONDS" "FUTURE_STAMP_TOLERANCE_SECONDS" "TICKET_LOOKBACK_MINUTES" "MAX_ATTEMPTS" "RETRY_BASE_MS" "RETRY_MAX_MS" -}}
ploomes-producer:
  kind: producer
  secrets: [PLOOMES_USER_KEY]
  vars: {{ concat $common $ploomes $producer | toJson }}
milvus-producer:
  kind: producer
  secrets: [MILVUS_TOKEN]
  vars: {{ concat $common $milvus $producer | toJson }}
clients-to-milvus:
  kind: worker
  topic: ploomes.contacts
  secrets: [MILVUS_TOKEN]
  vars: {{ concat $common $milvus $worker | toJson }}
clients-to-ploomes:
  kind: worker
  topic: milvus.clients
  secrets: [PLOOMES_USER_KEY]
  vars: {{ concat $common $ploomes $worker (list "PLOOMES_ORIGIN_ID" "PLOOMES_OWNER_ID" "PLOOMES_TAG_IDS") | toJson }}
tasks-to-milvus:
  kind: worker
  topic: ploomes.tasks
  secrets: [PLOOMES_USER_KEY, MILVUS_TOKEN]
  vars: {{ concat $common $ploomes $milvus $worker $tickets | toJson }}
interactions-to-milvus:
  kind: worker
  topic: ploomes.interactions
  secrets: [PLOOMES_USER_KEY, MILVUS_TOKEN]
  vars: {{ concat $common $ploomes $milvus $worker $tickets | toJson }}
pipeline-status:
  kind: status
  secrets: [PLOOMES_USER_KEY, MILVUS_TOKEN]
  vars: {{ concat $common (list "PLOOMES_BASE_URL" "MILVUS_BASE_URL" "PLOOMES_RATE_PER_MIN" "MILVUS_RATE_PER_MIN") | toJson }}
{{- end -}}

{{/*
Refuses secrets in plain values: the chart only mounts keys of an existing Secret.
*/}}
{{- define "pms.validate" -}}
{{- $secretNames := list "PLOOMES_USER_KEY" "MILVUS_TOKEN" "MONGODB_PASSWORD" "KAFKA_SASL_PASSWORD" "MONGODB_URI_FILE" -}}
{{- range $k, $v := .Values.config -}}
{{- if or (has $k $secretNames) (hasSuffix "_FILE" $k) (contains "PASSWORD" $k) -}}
{{- fail (printf "config.%s: secrets never go in values; put the key in the Secret named by secrets.existingSecret and set secrets.keys.%s" $k (trimSuffix "_FILE" $k)) -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := .Values.kafkaProperties -}}
{{- if not (hasPrefix "KAFKA_" $k) -}}
{{- fail (printf "kafkaProperties.%s: names must start with KAFKA_ (librdkafka property, '.' -> '_')" $k) -}}
{{- end -}}
{{- if or (contains "PASSWORD" $k) (contains "SECRET" $k) (hasSuffix "_KEY" $k) (hasSuffix "_PEM" $k) (hasSuffix "_FILE" $k) -}}
{{- fail (printf "kafkaProperties.%s: secrets never go in values; keep them in the existing Secret (secrets.keys.KAFKA_SASL_PASSWORD for the SASL password)" $k) -}}
{{- end -}}
{{- if eq $k "KAFKA_BOOTSTRAP_SERVERS" -}}
{{- fail "kafkaProperties.KAFKA_BOOTSTRAP_SERVERS: set config.KAFKA_BOOTSTRAP_SERVERS instead" -}}
{{- end -}}
{{- end -}}
{{- if regexMatch "^mongodb(\\+srv)?://[^/@]*:[^/@]*@" (toString .Values.config.MONGODB_URI) -}}
{{- fail "config.MONGODB_URI holds a password: name only the user (mongodb://user@host/db) and set secrets.keys.MONGODB_PASSWORD to the Secret's key" -}}
{{- end -}}
{{- if not .Values.config.KAFKA_BOOTSTRAP_SERVERS -}}
{{- fail "config.KAFKA_BOOTSTRAP_SERVERS is required (host:port[,host:port...])" -}}
{{- end -}}
{{- if not .Values.config.MONGODB_URI -}}
{{- fail "config.MONGODB_URI is required (mongodb://host:port/database; one database per account)" -}}
{{- end -}}
{{- if not .Values.secrets.existingSecret -}}
{{- fail "secrets.existingSecret is required: the name of the Secret holding PLOOMES_USER_KEY and MILVUS_TOKEN" -}}
{{- end -}}
{{- end -}}

{{/* the partitions of the workers' topics (TOPIC_PARTITIONS, default 6) */}}
{{- define "pms.partitions" -}}
{{- .Values.config.TOPIC_PARTITIONS | default 6 | int -}}
{{- end -}}

{{/*
One pod template: (dict "root" $ "name" "tasks-to-milvus" "comp" <pms.components entry>
"args" (list ...) "resources" {...} "metricsEnv" bool).
*/}}
{{- define "pms.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $fullname := include "pms.fullname" $root -}}
{{- $secretKeys := list -}}
{{- range $s := .comp.secrets -}}
{{- if and (index $v.secrets.keys $s) (or (ne $.comp.kind "status") $v.status.rateLimitKeys) -}}
{{- $secretKeys = append $secretKeys $s -}}
{{- end -}}
{{- end -}}
{{- range $s := list "MONGODB_PASSWORD" "KAFKA_SASL_PASSWORD" -}}
{{- if index $v.secrets.keys $s -}}
{{- $secretKeys = append $secretKeys $s -}}
{{- end -}}
{{- end -}}
metadata:
  labels:
    {{- include "pms.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .name }}
      image: {{ include "pms.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: {{ .args | toJson }}
      env:
        {{- if .metricsEnv }}
        - name: METRICS_PORT
          value: {{ $v.metricsPort | quote }}
        {{- end }}
        {{- range $name := .comp.vars }}
        {{- if ne (toString (index $v.config $name | default "")) "" }}
        - name: {{ $name }}
          valueFrom:
            configMapKeyRef:
              name: {{ $fullname }}
              key: {{ $name }}
        {{- end }}
        {{- end }}
        {{- range $name, $val := $v.kafkaProperties }}
        - name: {{ $name }}
          valueFrom:
            configMapKeyRef:
              name: {{ $fullname }}
              key: {{ $name }}
        {{- end }}
        {{- range $s := $secretKeys }}
        - name: {{ $s }}_FILE
          value: {{ printf "%s/%s" $v.secrets.mountPath $s | quote }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: {{ $v.metricsPort }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
        initialDelaySeconds: 10
        periodSeconds: 15
        timeoutSeconds: 5
        failureThreshold: 4
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      startupProbe:
        httpGet:
          path: /healthz
          port: metrics
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 12
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $secretKeys }}
        - name: secrets
          mountPath: {{ $v.secrets.mountPath }}
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
    {{- if $secretKeys }}
    - name: secrets
      secret:
        secretName: {{ $v.secrets.existingSecret }}
        defaultMode: 0440
        items:
          {{- range $s := $secretKeys }}
          - key: {{ index $v.secrets.keys $s }}
            path: {{ $s }}
          {{- end }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.affinity }}
  affinity:
    {{- toYaml $v.affinity | nindent 4 }}
  {{- else }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "pms.selector" . | nindent 16 }}
  {{- end }}
{{- end -}}
