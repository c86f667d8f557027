{{/* Names ------------------------------------------------------------------------ */}}
{{- define "cupcake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cupcake.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cupcake.reconciler.fullname" -}}{{ include "cupcake.fullname" . }}-reconciler{{- end -}}
{{- define "cupcake.agent.fullname" -}}{{ include "cupcake.fullname" . }}-agent{{- end -}}

{{- define "cupcake.reconciler.serviceAccountName" -}}
{{- default (include "cupcake.reconciler.fullname" .) .Values.reconciler.serviceAccount.name -}}
{{- end -}}
{{- define "cupcake.agent.serviceAccountName" -}}
{{- default (include "cupcake.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------ */}}
{{- define "cupcake.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "cupcake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cupcake
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cupcake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cupcake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The reconciler's settings: reconciler.* with the original chart's operator.* over it. */}}
{{- define "cupcake.reconciler.values" -}}
{{- $r := deepCopy .Values.reconciler -}}
{{- with .Values.operator -}}
{{- $r = mergeOverwrite $r (deepCopy .) -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

{{/* image reference: repository[:tag][@digest] */}}
{{- define "cupcake.image" -}}
{{- $img := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* The backup store: URL for the agent, the Secret and its mount. */}}
{{- define "cupcake.store" -}}
{{- $s := .Values.externalStore -}}
{{- $c := dict -}}
{{- if eq $s.type "s3" -}}
{{- $c = $s.s3 -}}
{{- else if eq $s.type "minio" -}}
{{- $c = $s.minio -}}
{{- else if eq $s.type "gcs" -}}
{{- $c = $s.gcs -}}
{{- else if eq $s.type "azure" -}}
{{- $c = $s.azure -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "cupcake.storeUrl" -}}
{{- $s := .Values.externalStore -}}
{{- $c := include "cupcake.store" . | fromYaml -}}
{{- $scheme := dict "s3" "s3" "minio" "s3" "gcs" "gs" "azure" "az" -}}
{{- $bucket := ternary $c.container $c.bucket (eq $s.type "azure") -}}
{{- printf "%s://%s%s" (get $scheme $s.type) $bucket (ternary "" (printf "/%s" (trimSuffix "/" (trimPrefix "/" (default "" $c.prefix)))) (empty $c.prefix)) -}}
{{- end -}}

{{/* Validation that the schema cannot express; fails the render with the reason. */}}
{{- define "cupcake.validate" -}}
{{- $s := .Values.externalStore -}}
{{- if or $s.s3.accessKey $s.s3.secretKey -}}
{{- fail "externalStore.s3.accessKey/secretKey are not supported (they would be stored in the Helm release): create a Secret with keys access-key and secret-key and set externalStore.s3.existingSecret (docs/install.md)" -}}
{{- end -}}
{{- if $s.enabled -}}
{{- $c := include "cupcake.store" . | fromYaml -}}
{{- if and (ne $s.type "azure") (not $c.bucket) -}}
{{- fail (printf "externalStore.enabled: set externalStore.%s.bucket" $s.type) -}}
{{- end -}}
{{- if and (eq $s.type "azure") (or (not $c.container) (not $c.account)) -}}
{{- fail "externalStore.enabled with type azure: set externalStore.azure.account and externalStore.azure.container" -}}
{{- end -}}
{{- if and (eq $s.type "minio") (not $c.endpoint) -}}
{{- fail "externalStore.type minio: set externalStore.minio.endpoint" -}}
{{- end -}}
{{- if not $c.existingSecret -}}
{{- fail (printf "externalStore.enabled: set externalStore.%s.existingSecret (a Secret with the store's credentials; docs/install.md)" $s.type) -}}
{{- end -}}
{{- end -}}
{{- $g := .Values.gitops -}}
{{- if $g.enabled -}}
{{- $r := include "cupcake.reconciler.values" . | fromYaml -}}
{{- if $r.rolloutOnly -}}
{{- fail "gitops.enabled and reconciler.rolloutOnly: --rollout-only runs no GitOps loop; drop one" -}}
{{- end -}}
{{- if not $g.repo -}}{{- fail "gitops.enabled: set gitops.repo (the fleet repository)" -}}{{- end -}}
{{- if not $g.cluster -}}{{- fail "gitops.enabled: set gitops.cluster (the fleet's folder clusters/NAME)" -}}{{- end -}}
{{- if eq $g.statusBranch $g.branch -}}{{- fail "gitops.statusBranch must differ from gitops.branch: status never lands where desired state is read" -}}{{- end -}}
{{- $ssh := or (hasPrefix "ssh://" $g.repo) (and (not (contains "://" $g.repo)) (contains "@" $g.repo)) -}}
{{- $http := or (hasPrefix "https://" $g.repo) (hasPrefix "http://" $g.repo) -}}
{{- if and $g.auth.tokenSecret.name $g.auth.sshKeySecret.name -}}{{- fail "gitops.auth: give tokenSecret (https) or sshKeySecret (ssh), not both" -}}{{- end -}}
{{- if and $g.auth.tokenSecret.name (not $http) -}}{{- fail (printf "gitops.auth.tokenSecret: a token authenticates https remotes, and gitops.repo %s is not one" $g.repo) -}}{{- end -}}
{{- if and $g.auth.sshKeySecret.name (not $ssh) -}}{{- fail (printf "gitops.auth.sshKeySecret: a key authenticates ssh remotes, and gitops.repo %s is not one" $g.repo) -}}{{- end -}}
{{- if and $g.auth.knownHostsSecret.name (not $ssh) -}}{{- fail (printf "gitops.auth.knownHostsSecret: host keys are checked for ssh remotes, and gitops.repo %s is not one" $g.repo) -}}{{- end -}}
{{- if and $g.webhook.enabled (not $g.webhook.secret.name) -}}{{- fail "gitops.webhook.enabled: set gitops.webhook.secret.name (a Secret with the HMAC secret)" -}}{{- end -}}
{{- if and $g.github.enabled (or (not $g.github.repo) (not $g.github.tokenSecret.name)) -}}{{- fail "gitops.github.enabled: set gitops.github.repo (OWNER/NAME) and gitops.github.tokenSecret.name" -}}{{- end -}}
{{- else -}}
{{- if or $g.webhook.enabled $g.github.enabled -}}{{- fail "gitops.webhook and gitops.github need gitops.enabled (the GitOps loop)" -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy egress rules: the API server, DNS. */}}
{{- define "cupcake.np.apiserver" -}}
- ports:
  {{- range .apiServerPorts }}
    - {protocol: TCP, port: {{ . }}}
  {{- end }}
  {{- with .apiServerCidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
{{- end -}}
{{- define "cupcake.np.dns" -}}
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}
