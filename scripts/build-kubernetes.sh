#!/usr/bin/env bash
# Builds a current Kubernetes control plane from the Go module proxy (no other download): kube-apiserver,
# kube-controller-manager and kubectl of one release, and etcd. Static binaries land in $OUT.
#
#   GO=go OUT=DIR K8S_VERSION=1.37.2 ETCD_VERSION=3.6.16 build-kubernetes.sh
#
# k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api, k8s.io/apiserver, ...) with
# ./staging paths that are not in the module zip, and a dependency's replaces are ignored anyway: so a
# throwaway main module requires k8s.io/kubernetes vX.Y.Z and replaces every staging module it requires
# as v0.0.0 with that module's published tag v0.Y.Z. The three Kubernetes commands are compiled by one
# `go build`, which shares their packages. Measured on this project's 2-core machine from empty Go
# caches: 20 s to resolve the modules, 388 s to compile the three commands, 42 s for etcd; nothing once
# the binaries exist.
set -euo pipefail
K8S=${K8S_VERSION:-1.37.2}
ETCDV=${ETCD_VERSION:-3.6.16}
GO=${GO:-go}
OUT=${OUT:?OUT must name the directory for the binaries}
WORK=${WORK:-$OUT/src}
export CGO_ENABLED=0 GOFLAGS="-modcacherw -buildvcs=false"
say() { printf '[build-kubernetes %s] %s\n' "$(date +%T)" "$*" >&2; }
mkdir -p "$OUT"

if [ ! -x "$OUT/kube-apiserver" ] || [ ! -x "$OUT/kube-controller-manager" ] || [ ! -x "$OUT/kubectl" ]; then
  src=$WORK/kubernetes-v$K8S; rm -rf "$src"; mkdir -p "$src"; cd "$src"
  say "Kubernetes v$K8S: resolving modules"
  modfile=$("$GO" mod download -json "k8s.io/kubernetes@v$K8S" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$modfile" ] || { say "no go.mod for k8s.io/kubernetes@v$K8S"; exit 1; }
  {
    printf 'module local/kconn-kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S"
    grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$modfile" | awk -v v="v0.${K8S#1.}" '{printf "\t%s => %s %s\n", $1, $1, v}'
    printf ')\n'
  } >go.mod
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    "$GO" get "k8s.io/kubernetes/cmd/$cmd@v$K8S" 2>>get.log || { cat get.log >&2; exit 1; }
  done
  # Version stamping as hack/lib/version.sh does (what /version and `kubectl version` report).
  minor=${K8S#1.}; minor=${minor%%.*}; ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  say "Kubernetes v$K8S: compiling kube-apiserver, kube-controller-manager and kubectl (the long part)"
  start=$SECONDS
  mkdir -p bin
  "$GO" build -trimpath -ldflags "$ld" -o bin/ \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
  mv bin/kube-apiserver bin/kube-controller-manager bin/kubectl "$OUT/"
  say "Kubernetes v$K8S built in $((SECONDS - start)) s"
  cd "$OUT"; rm -rf "$src"
fi

if [ ! -x "$OUT/etcd" ]; then
  src=$WORK/etcd-v$ETCDV; rm -rf "$src"; mkdir -p "$src"; cd "$src"
  say "etcd v$ETCDV: resolving modules"
  printf 'module local/kconn-etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCDV" >go.mod
  # go.etcd.io/etcd/server/v3 is itself etcd's main package.
  "$GO" get "go.etcd.io/etcd/server/v3@v$ETCDV" 2>get.log || { cat get.log >&2; exit 1; }
  say "etcd v$ETCDV: compiling"
  start=$SECONDS
  "$GO" build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$OUT/etcd.tmp" "$OUT/etcd"
  say "etcd v$ETCDV built in $((SECONDS - start)) s"
  cd "$OUT"; rm -rf "$src"
fi
rmdir "$WORK" 2>/dev/null || true
