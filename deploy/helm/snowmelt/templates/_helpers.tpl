{{- define "snowmelt.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "snowmelt.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "snowmelt.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "snowmelt.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-credentials" (include "snowmelt.fullname" .)) -}}
{{- end -}}

{{- define "snowmelt.hasSecret" -}}
{{- $s := .Values.secrets -}}
{{- if or $s.existingSecret $s.kafkaSaslPassword $s.clickhousePassword $s.awsAccessKeyId $s.awsSecretAccessKey $s.sqlToken -}}true{{- end -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the role's shutdown_grace + preStop sleep + margin */}}
{{- define "snowmelt.grace" -}}
{{- $grace := dig .section "shutdown_grace" 30 .root.Values.config | float64 | ceil | int -}}
{{- add $grace (.preStop | default 0) .root.Values.terminationGraceMarginSeconds -}}
{{- end -}}

{{/*
One role's Deployment. Arguments (a dict): root, component (collector, enrich,
load-clickhouse, ...), args (after the subcommand's --config), replicas, values (the role's
values: probes, resources, extraEnv), section (its config section, for shutdown_grace),
port and portName (the container port probed and scraped), secretEnv (list of
[ENV_NAME, secretKey]), env (extra fixed env), preStop (seconds), mounts (enrich's extras).
*/}}
{{- define "snowmelt.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $name := printf "%s-%s" (include "snowmelt.fullname" $root) .component -}}
apiVersion: apps/v1
kind: {{ ternary "StatefulSet" "Deployment" (.statefulSet | default false) }}
metadata:
  name: {{ $name }}
  labels:
    {{- include "snowmelt.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "snowmelt.selector" (dict "root" $root "component" .component) | nindent 6 }}
  {{- if .statefulSet }}
  # stable pod names (<name>-0, -1, ...): each pod's name is its Kafka transactional id, so a
  # replaced pod aborts its predecessor's open transaction when it starts
  serviceName: {{ $name }}
  podManagementPolicy: Parallel
  updateStrategy:
    type: RollingUpdate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: {{ .maxUnavailable | default 0 }}
      maxSurge: 1
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "snowmelt.selector" (dict "root" $root "component" .component) | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmaps.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .port | quote }}
        prometheus.io/path: /metrics
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ include "snowmelt.grace" (dict "root" $root "section" .section "preStop" .preStop) }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
              protocol: TCP
          env:
            - name: HOME
              value: /tmp
            {{- range $e := .env }}
            - name: {{ index $e 0 }}
              value: {{ index $e 1 | quote }}
            {{- end }}
            {{- if include "snowmelt.hasSecret" $root }}
            {{- range $e := .secretEnv }}
            - name: {{ index $e 0 }}
              valueFrom:
                secretKeyRef:
                  name: {{ include "snowmelt.secretName" $root }}
                  key: {{ index $e 1 }}
                  optional: true
            {{- end }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .preStop }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ .preStop }}"]
          {{- end }}
          livenessProbe:
            {{- toYaml $v.livenessProbe | nindent 12 }}
          readinessProbe:
            {{- toYaml $v.readinessProbe | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/snowmelt/config.yml
              subPath: config.yml
              readOnly: true
            - name: tmp
              mountPath: /tmp
            - name: data
              mountPath: /var/lib/snowmelt
            {{- if .withEnrichConfigs }}
            {{- if $root.Values.enrichments }}
            - name: enrichments
              mountPath: /etc/snowmelt/enrichments
              readOnly: true
            {{- end }}
            {{- if $root.Values.igluResolver }}
            - name: iglu
              mountPath: /etc/snowmelt/iglu
              readOnly: true
            {{- end }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "snowmelt.fullname" $root }}-config
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
        - name: data
          emptyDir:
            sizeLimit: {{ .dataSizeLimit | default "64Mi" }}
        {{- if .withEnrichConfigs }}
        {{- if $root.Values.enrichments }}
        - name: enrichments
          configMap:
            name: {{ include "snowmelt.fullname" $root }}-enrichments
        {{- end }}
        {{- if $root.Values.igluResolver }}
        - name: iglu
          configMap:
            name: {{ include "snowmelt.fullname" $root }}-iglu-resolver
        {{- end }}
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{- define "snowmelt.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "snowmelt.fullname" .root }}-{{ .component }}
  labels:
    {{- include "snowmelt.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- toYaml .pdb | nindent 2 }}
  selector:
    matchLabels:
      {{- include "snowmelt.selector" (dict "root" .root "component" .component) | nindent 6 }}
{{- end -}}
