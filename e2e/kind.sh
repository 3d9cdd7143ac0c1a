#!/usr/bin/env bash
# The operator's scenarios on a real Kubernetes cluster made with kind:
# builds the ferrocd image (Dockerfile), loads it into the kind nodes,
# installs the chart, then runs e2e/k8s/tests/k8s_real.rs against the cluster
# (the same scenarios the local harness runs in k8s_local.rs).
#
#   bash e2e/kind.sh                 # create (or reuse) the kind cluster, run, delete it
#   KEEP_CLUSTER=1 bash e2e/kind.sh  # keep the cluster afterwards
#   KIND_CLUSTER=name                # cluster name (default ferrocd-e2e)
#   E2E_THREADS=n                    # scenarios at once (default 2; each has its namespace)
#
# Needs docker, kind >= 0.24 (its kindnet enforces the NetworkPolicy the
# partition scenario uses), helm, kubectl and cargo. Progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
for tool in docker kind helm kubectl cargo; do
  command -v "$tool" >/dev/null || { echo "kind.sh: $tool is not installed" >&2; exit 1; }
done

cluster=${KIND_CLUSTER:-ferrocd-e2e}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
image="ferrocd:${version}"
kubeconfig=$(mktemp)
created=0

cleanup() {
  rm -f "$kubeconfig"
  if [ "$created" = 1 ] && [ -z "${KEEP_CLUSTER:-}" ]; then
    say "deleting kind cluster $cluster"
    kind delete cluster --name "$cluster" >&2 || true
  fi
}
trap cleanup EXIT

say "building image $image"
docker build -t "$image" . >&2

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  say "reusing kind cluster $cluster"
else
  say "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --wait 120s >&2
  created=1
fi
kind get kubeconfig --name "$cluster" >"$kubeconfig"
export KUBECONFIG=$kubeconfig

say "loading $image into the nodes"
kind load docker-image "$image" --name "$cluster" >&2

# Members run the image the operator names by default (ferrocd:<version>);
# the chart's operator runs the same image.
say "installing the chart"
helm upgrade --install ferrocd-operator charts/ferrocd-operator \
  --namespace ferrocd-system --create-namespace \
  --set image.tag="$version" --wait --timeout 5m >&2

say "running the scenarios (e2e/k8s/tests/k8s_real.rs)"
FERROCD_E2E_IMAGE=$image cargo test -p ferrocd-k8s-harness --features real-cluster --test k8s_real -- \
  --nocapture --test-threads "${E2E_THREADS:-2}"
