#!/usr/bin/env bash
# Regenerates the Karpenter API types in generated/ from the CRDs in crds/ with kopium.
#
#   bash src/karpenter/generate.sh          # rewrite generated/*.rs
#   bash src/karpenter/generate.sh --check  # fail if generated/*.rs differ from a fresh run
#
# Needs kopium 0.24.1 (`cargo install --locked kopium --version 0.24.1`) and rustfmt.
# Never edit generated/*.rs by hand: change this script or the CRDs and rerun it.
set -euo pipefail
cd "$(dirname "$0")"

want="kopium 0.24.1"
have="$(kopium --version 2>/dev/null || true)"
if [[ "$have" != "$want" ]]; then
  echo "generate.sh: need $want, found '${have:-nothing}'" >&2
  exit 2
fi

check=false
[[ "${1:-}" == "--check" ]] && check=true
out=generated
$check && out="$(mktemp -d)"

# module file : CRD file : version
specs=(
  "nodepool_v1:crds/karpenter.sh_nodepools.yaml:v1"
  "nodeclaim_v1:crds/karpenter.sh_nodeclaims.yaml:v1"
  "ec2nodeclass_v1:crds/karpenter.k8s.aws_ec2nodeclasses.yaml:v1"
  "nodeoverlay_v1alpha1:crds/karpenter.sh_nodeoverlays.yaml:v1alpha1"
  "nodepool_v1beta1:crds/v1beta1/karpenter.sh_nodepools.yaml:v1beta1"
  "ec2nodeclass_v1beta1:crds/v1beta1/karpenter.k8s.aws_ec2nodeclasses.yaml:v1beta1"
  "provisioner_v1alpha5:crds/karpenter.sh_provisioners.yaml:v1alpha5"
  "awsnodetemplate_v1alpha1:crds/karpenter.k8s.aws_awsnodetemplates.yaml:v1alpha1"
)
for s in "${specs[@]}"; do
  IFS=: read -r module crd version <<<"$s"
  kopium -f "$crd" --api-version "$version" --docs \
    --derive Default --derive PartialEq --smart-derive-elision >"$out/$module.rs"
  rustfmt --edition 2024 "$out/$module.rs"
  # The CRD this came from, by hash: tests/crd_schema.rs fails when a CRD changes
  # without this script being rerun (CI has no kopium).
  sed -i "3a // crd sha256: $(sha256sum "$crd" | cut -d' ' -f1)" "$out/$module.rs"
done

if $check; then
  status=0
  for s in "${specs[@]}"; do
    module="${s%%:*}"
    diff -u "generated/$module.rs" "$out/$module.rs" || status=1
  done
  rm -rf "$out"
  [[ $status == 0 ]] && echo "generate.sh: generated/ is up to date"
  exit $status
fi
