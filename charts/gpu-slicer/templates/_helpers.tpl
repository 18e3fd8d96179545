{{/* Chart name, cut to the 63 characters of a label value. */}}
{{- define "gpu-slicer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: fullnameOverride, else <release>-<chart> (just
<release> when it already contains the chart name). */}}
{{- define "gpu-slicer.fullname" -}}
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

{{- define "gpu-slicer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the controller pods (Deployment, Service, PDB, NetworkPolicy). */}}
{{- define "gpu-slicer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpu-slicer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the chart. (managed-by is Helm here: gpu-slicer's own
label value `gpu-slicer` marks only the objects the controller writes.) */}}
{{- define "gpu-slicer.labels" -}}
helm.sh/chart: {{ include "gpu-slicer.chart" . }}
{{ include "gpu-slicer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gpu-slicer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gpu-slicer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "gpu-slicer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The pods' affinity: .Values.affinity, with the chart's selector labels as the
labelSelector of every pod anti-affinity term that has none (as Karpenter's chart does), so
the default terms keep the replicas apart whatever the release is called. `affinity: null`
gives none.
*/}}
{{- define "gpu-slicer.affinity" -}}
{{- $affinity := deepCopy (.Values.affinity | default dict) }}
{{- $selector := dict "matchLabels" (include "gpu-slicer.selectorLabels" . | fromYaml) }}
{{- with $affinity.podAntiAffinity }}
{{- range .requiredDuringSchedulingIgnoredDuringExecution }}
{{- if not (hasKey . "labelSelector") }}
{{- $_ := set . "labelSelector" $selector }}
{{- end }}
{{- end }}
{{- range .preferredDuringSchedulingIgnoredDuringExecution }}
{{- if and .podAffinityTerm (not (hasKey .podAffinityTerm "labelSelector")) }}
{{- $_ := set .podAffinityTerm "labelSelector" $selector }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $affinity }}
{{- end }}

{{- define "gpu-slicer.leaseName" -}}
{{- default (include "gpu-slicer.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "gpu-slicer.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/* Where gpu-slicer writes its device-plugin ConfigMap. */}}
{{- define "gpu-slicer.configmapNamespace" -}}
{{- default .Values.devicePlugin.namespace .Values.render.configmapNamespace }}
{{- end }}

{{/* The catalog ConfigMap mounted at /etc/gpu-slicer/catalog, if any. */}}
{{- define "gpu-slicer.catalogConfigMap" -}}
{{- if .Values.planner.catalog.existingConfigMap }}
{{- .Values.planner.catalog.existingConfigMap }}
{{- else if .Values.planner.catalog.csv }}
{{- printf "%s-catalog" (include "gpu-slicer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "gpu-slicer.metricsBindAddress" -}}
{{- $host := toString .Values.metrics.bindAddress }}
{{- if contains ":" $host }}
{{- printf "[%s]:%d" $host (int .Values.metrics.port) }}
{{- else }}
{{- printf "%s:%d" $host (int .Values.metrics.port) }}
{{- end }}
{{- end }}

{{/*
The arguments of `gpu-slicer run`, one `--flag=value` per line (the `=` form, so that
`--live-prices` never takes the next argument as its value). Booleans add their flag only
when true; empty optional values leave their flag out.
*/}}
{{- define "gpu-slicer.args" -}}
{{- $v := .Values -}}
- run
- {{ printf "--cluster-name=%s" (required "clusterName is required: the EKS cluster's name (--set clusterName=my-cluster)" $v.clusterName) | quote }}
{{- /* catalog and live data */}}
{{- if (include "gpu-slicer.catalogConfigMap" .) }}
- {{ printf "--catalog=/etc/gpu-slicer/catalog/%s" $v.planner.catalog.key | quote }}
{{- end }}
{{- with $v.planner.daemonsetOverhead }}
- {{ printf "--daemonset-overhead=%s" . | quote }}
{{- end }}
- {{ printf "--live-prices=%s" (toString $v.aws.livePrices) | quote }}
{{- with $v.aws.region }}
- {{ printf "--region=%s" . | quote }}
{{- end }}
{{- with $v.aws.endpointUrl }}
- {{ printf "--endpoint-url=%s" . | quote }}
{{- end }}
{{- with $v.aws.pricingEndpointUrl }}
- {{ printf "--pricing-endpoint-url=%s" . | quote }}
{{- end }}
- {{ printf "--pricing-region=%s" $v.aws.pricingRegion | quote }}
- {{ printf "--aws-requests-per-second=%d" (int $v.aws.requestsPerSecond) | quote }}
- {{ printf "--aws-timeout=%s" $v.aws.timeout | quote }}
- {{ printf "--aws-max-attempts=%d" (int $v.aws.maxAttempts) | quote }}
{{- if $v.aws.priceCache.enabled }}
- {{ printf "--price-cache=%s" $v.aws.priceCache.path | quote }}
{{- end }}
{{- if $v.aws.noPriceCache }}
- "--no-price-cache"
{{- end }}
{{- /* planning policy */}}
{{- with (toString $v.planner.replicas) }}
- {{ printf "--replicas=%s" . | quote }}
{{- end }}
- {{ printf "--max-replicas=%d" (int $v.planner.maxReplicas) | quote }}
{{- with $v.planner.gpuMemoryHeadroom }}
- {{ printf "--gpu-memory-headroom=%s" . | quote }}
{{- end }}
{{- with $v.planner.contextMemory }}
- {{ printf "--context-memory=%s" . | quote }}
{{- end }}
- {{ printf "--share-model=%s" $v.planner.shareModel | quote }}
{{- with $v.planner.timeSlicingEfficiency }}
- {{ printf "--time-slicing-efficiency=%s" . | quote }}
{{- end }}
{{- with $v.planner.mpsEfficiency }}
- {{ printf "--mps-efficiency=%s" . | quote }}
{{- end }}
{{- with $v.planner.instanceTypes }}
- {{ printf "--instance-types=%s" (join "," .) | quote }}
{{- end }}
{{- with $v.planner.families }}
- {{ printf "--families=%s" (join "," .) | quote }}
{{- end }}
- {{ printf "--capacity-type=%s" $v.planner.capacityType | quote }}
- {{ printf "--device-plugin-configmap=%s" $v.devicePlugin.configmap | quote }}
- {{ printf "--device-plugin-namespace=%s" $v.devicePlugin.namespace | quote }}
- {{ printf "--effort=%s" $v.planner.effort | quote }}
- {{ printf "--gap=%v" $v.planner.gap | quote }}
- {{ printf "--plan-deadline=%s" $v.planner.planDeadline | quote }}
{{- $cost := float64 $v.planner.maxHourlyCost }}
{{- if gt $cost 0.0 }}
{{- /* whole dollars as an integer: %v would print 1e+06 */}}
{{- if eq $cost (floor $cost) }}
- {{ printf "--max-hourly-cost=%d" (int64 $cost) | quote }}
{{- else }}
- {{ printf "--max-hourly-cost=%v" $cost | quote }}
{{- end }}
{{- end }}
{{- if gt (int $v.planner.maxNodes) 0 }}
- {{ printf "--max-nodes=%d" (int $v.planner.maxNodes) | quote }}
{{- end }}
{{- with $v.planner.namespaces }}
- {{ printf "--namespaces=%s" (join "," .) | quote }}
{{- end }}
{{- with $v.planner.excludeNamespaces }}
- {{ printf "--exclude-namespaces=%s" (join "," .) | quote }}
{{- end }}
{{- /* rendering */}}
- {{ printf "--emission=%s" $v.render.emission | quote }}
- {{ printf "--karpenter-version=%s" (toString $v.render.karpenterVersion) | quote }}
- {{ printf "--ami-family=%s" $v.render.amiFamily | quote }}
- {{ printf "--ami-version=%s" (toString $v.render.amiVersion) | quote }}
{{- with $v.render.nodeRole }}
- {{ printf "--node-role=%s" . | quote }}
{{- end }}
{{- with $v.render.instanceProfile }}
- {{ printf "--instance-profile=%s" . | quote }}
{{- end }}
- {{ printf "--configmap-name=%s" $v.render.configmapName | quote }}
- {{ printf "--configmap-namespace=%s" (include "gpu-slicer.configmapNamespace" .) | quote }}
{{- if $v.render.failRequestsGreaterThanOne }}
- "--fail-requests-greater-than-one"
{{- end }}
{{- /* controller */}}
{{- if $v.controller.dryRun }}
- "--dry-run"
{{- end }}
- {{ printf "--batch-idle-duration=%s" $v.controller.batchIdleDuration | quote }}
- {{ printf "--batch-max-duration=%s" $v.controller.batchMaxDuration | quote }}
- {{ printf "--resync-period=%s" $v.controller.resyncPeriod | quote }}
- {{ printf "--slicing-timeout=%s" $v.controller.slicingTimeout | quote }}
- {{ printf "--metrics-bind-address=%s" (include "gpu-slicer.metricsBindAddress" .) | quote }}
- {{ printf "--lease-name=%s" (include "gpu-slicer.leaseName" .) | quote }}
- {{ printf "--lease-namespace=%s" (include "gpu-slicer.leaseNamespace" .) | quote }}
{{- with $v.leaderElection.identity }}
- {{ printf "--identity=%s" . | quote }}
{{- end }}
- {{ printf "--writes-per-second=%d" (int $v.controller.writesPerSecond) | quote }}
- {{ printf "--write-burst=%d" (int $v.controller.writeBurst) | quote }}
- {{ printf "--max-pod-events=%d" (int $v.controller.maxPodEvents) | quote }}
- {{ printf "--log-format=%s" $v.controller.logFormat | quote }}
{{- /* defragmentation */}}
- {{ printf "--repack-interval=%s" (toString $v.repack.interval) | quote }}
- {{ printf "--repack-min-saving=%v" (float64 $v.repack.minSaving) | quote }}
- {{ printf "--repack-min-pod-age=%s" (toString $v.repack.minPodAge) | quote }}
- {{ printf "--repack-max-nodes-per-hour=%d" (int $v.repack.maxNodesPerHour) | quote }}
- {{ printf "--repack-ready-timeout=%s" (toString $v.repack.readyTimeout) | quote }}
{{- /* admission webhook */}}
{{- if $v.webhook.enabled }}
- {{ printf "--webhook-port=%d" (int $v.webhook.port) | quote }}
- {{ printf "--webhook-bind-address=%s" (toString $v.webhook.bindAddress) | quote }}
- {{ printf "--webhook-cert-dir=%s" (include "gpu-slicer.webhookCertDir" .) | quote }}
{{- else }}
- "--webhook-port=0"
{{- end }}
{{- range $v.controller.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Checks across values that the schema cannot express well. */}}
{{- define "gpu-slicer.validate" -}}
{{- if and .Values.aws.priceCache.enabled .Values.aws.noPriceCache }}
{{- fail "aws.priceCache.enabled and aws.noPriceCache exclude each other (--price-cache conflicts with --no-price-cache)" }}
{{- end }}
{{- if and .Values.planner.catalog.csv .Values.planner.catalog.existingConfigMap }}
{{- fail "set planner.catalog.csv or planner.catalog.existingConfigMap, not both" }}
{{- end }}
{{- if and (eq .Values.planner.capacityType "spot") (eq (toString .Values.aws.livePrices) "false") }}
{{- if not (or .Values.planner.catalog.csv .Values.planner.catalog.existingConfigMap) }}
{{- fail "planner.capacityType=spot with aws.livePrices=false needs planner.catalog with a spot_usd_per_hour column: gpu-slicer run refuses spot without spot prices (the embedded catalog has none)" }}
{{- end }}
{{- if and .Values.planner.catalog.csv (not (contains "spot_usd_per_hour" (first (splitList "\n" .Values.planner.catalog.csv)))) }}
{{- fail "planner.capacityType=spot: the first line of planner.catalog.csv has no spot_usd_per_hour column" }}
{{- end }}
{{- end }}
{{- with .Values.leaderElection.identity }}
{{- if and (gt (int $.Values.replicaCount) 1) (not (contains "$(POD_NAME)" .)) }}
{{- fail "leaderElection.identity would be the same in every replica: leave it empty or include $(POD_NAME) when replicaCount > 1" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The admission webhook: its Service, the Secret of its serving certificate (Helm's own
or cert-manager's) and where the pod mounts it. */}}
{{- define "gpu-slicer.webhookService" -}}
{{- printf "%s-webhook" (include "gpu-slicer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpu-slicer.webhookSecret" -}}
{{- if .Values.webhook.certManager.enabled }}
{{- printf "%s-webhook-cert-manager-tls" (include "gpu-slicer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-webhook-tls" (include "gpu-slicer.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "gpu-slicer.webhookCertDir" -}}
/etc/gpu-slicer/webhook-tls
{{- end }}

{{/* The DNS names the API server may use for the webhook Service. */}}
{{- define "gpu-slicer.webhookDnsNames" -}}
{{- $svc := include "gpu-slicer.webhookService" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* Labels of the webhook's objects: the chart's, with component webhook. */}}
{{- define "gpu-slicer.webhookLabels" -}}
{{- include "gpu-slicer.labels" . | replace "app.kubernetes.io/component: controller" "app.kubernetes.io/component: webhook" }}
{{- end }}

{{/*
The Helm-generated CA and serving certificate, base64 like a Secret's data, as YAML with
ca.crt, tls.crt and tls.key. An existing Secret of the release that has all three is
reused (lookup), so an upgrade keeps the certificate and the caBundle in step; only a
first install, or a Secret deleted by hand, generates new ones. `helm template` and
`--dry-run` cannot look up and always generate. Call it once per rendering and share
the result: every call generates a new CA.
*/}}
{{- define "gpu-slicer.webhookCerts" -}}
{{- $secret := include "gpu-slicer.webhookSecret" . }}
{{- $existing := (lookup "v1" "Secret" .Release.Namespace $secret) }}
{{- $data := dict }}
{{- if $existing }}
{{- $data = (get $existing "data") | default dict }}
{{- end }}
{{- if and (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") }}
ca.crt: {{ index $data "ca.crt" | quote }}
tls.crt: {{ index $data "tls.crt" | quote }}
tls.key: {{ index $data "tls.key" | quote }}
{{- else }}
{{- $days := int .Values.webhook.certValidityDays }}
{{- $ca := genCA (printf "%s-webhook-ca" (include "gpu-slicer.fullname" .)) $days }}
{{- $names := include "gpu-slicer.webhookDnsNames" . | fromJsonArray }}
{{- $cert := genSignedCert (index $names 2) nil $names $days $ca }}
ca.crt: {{ $ca.Cert | b64enc | quote }}
tls.crt: {{ $cert.Cert | b64enc | quote }}
tls.key: {{ $cert.Key | b64enc | quote }}
{{- end }}
{{- end }}
