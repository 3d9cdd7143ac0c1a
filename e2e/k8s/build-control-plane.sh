#!/usr/bin/env bash
# Builds a real kube-apiserver, kube-controller-manager and kubectl (Kubernetes 1.20.2)
# from Debian bookworm's `kubernetes` source package, with Go 1.15 from Debian
# bullseye (a newer Go crashes at the first custom resource). The binaries are
# cached outside the clone; a second run only prints their directory.
#
#   e2e/k8s/build-control-plane.sh        # prints the directory holding the binaries
#
# FERROCD_K8S_CACHE overrides the cache directory. Progress goes to stderr.
set -euo pipefail

cache=${FERROCD_K8S_CACHE:-/var/cache/ferrocd/k8s-1.20.2}
bin="$cache/bin"
say() { printf '==> %s\n' "$*" >&2; }

binaries="kube-apiserver kube-controller-manager kubectl"
built=yes
for b in $binaries; do [ -x "$bin/$b" ] || built=no; done
if [ $built = yes ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
export DEBIAN_FRONTEND=noninteractive

# Debian's source lists and bullseye (for golang-1.15-go), each added once.
src_list=/etc/apt/sources.list.d/ferrocd-k8s.sources
if [ ! -f "$src_list" ]; then
  say "adding deb-src bookworm and bullseye to apt"
  cat > "$src_list" <<'LIST'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
  # Nothing else may come from bullseye unless asked for by name.
  cat > /etc/apt/preferences.d/ferrocd-bullseye <<'PREF'
Package: *
Pin: release n=bullseye
Pin-Priority: 100
PREF
  apt-get update -qq
fi

go=/usr/lib/go-1.15/bin/go
if [ ! -x "$go" ]; then
  say "installing golang-1.15-go (bullseye), rsync, dpkg-dev"
  apt-get install -y -qq -t bullseye golang-1.15-go >/dev/null
fi
command -v rsync >/dev/null || apt-get install -y -qq rsync >/dev/null
command -v dpkg-source >/dev/null || apt-get install -y -qq dpkg-dev >/dev/null

tree=$(find "$cache/src" -maxdepth 1 -type d -name 'kubernetes-1.20*' 2>/dev/null | head -1 || true)
if [ -z "$tree" ]; then
  say "fetching Debian's kubernetes source package"
  rm -rf "$cache/src"; mkdir -p "$cache/src"
  (cd "$cache/src" && apt-get source -qq kubernetes >/dev/null)
  tree=$(find "$cache/src" -maxdepth 1 -type d -name 'kubernetes-1.20*' | head -1)
fi
[ -n "$tree" ] || { echo "kubernetes source tree not found under $cache/src" >&2; exit 1; }

# The GOPATH layout Kubernetes' Makefile expects (as debian/rules builds it).
gopath="$cache/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
say "building $binaries (several minutes)"
(
  cd "$gopath/src/k8s.io/kubernetes"
  export GOPATH="$gopath" CGO_ENABLED=0
  export PATH="/usr/lib/go-1.15/bin:$PATH" KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >&2
)
mkdir -p "$bin"
for b in $binaries; do
  cp "$(find "$tree/_output" -type f -name "$b" -perm -u+x | head -1)" "$bin/$b"
done
echo "$bin"
