#!/usr/bin/env bash
# The integration test environment, on loopback only:
#   - Apache Kafka (KRaft, one node) with listeners PLAINTEXT, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256,
#     SCRAM-SHA-512, GSSAPI), SSL, SSL with required client certificates (MTLS) and SASL_SSL;
#     StandardAuthorizer with a super user and users with partial rights;
#   - a second Kafka cluster of 3 brokers (PLAINTEXT) for real replication and min.insync.replicas;
#   - an MIT Kerberos KDC with principals and keytabs for the broker and the clients;
#   - a schema registry with the Confluent API (Apicurio Registry), open and with basic auth;
#   - an OIDC provider (scripts/oidc: the client-credentials grant, over http and https, and one with a
#     foreign key) and an OAUTHBEARER listener that validates its JWTs (signature, issuer, audience);
#   - a current Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager (garbage
#     collection, namespace deletion), admin and unprivileged kubeconfig contexts, and kubectl, all
#     built from the Go module proxy;
#   - the judges GitOps tools use for status: the kstatus library and Argo CD's Lua runtime
#     (scripts/judges, a small Go program).
#
#   scripts/test-env.sh install   install or build what is missing (cached under ~/.cache/kconn-test)
#   scripts/test-env.sh up        install, start everything on free ports, write target/test-env/env
#   scripts/test-env.sh down      stop every process this script started (by PID)
#   scripts/test-env.sh env       print target/test-env/env
#   scripts/test-env.sh kill NAME  SIGKILL one process (krb5kdc, kafka, kafka3-1..3, etcd, kube-apiserver,
#                                  kube-controller-manager, oidc, oidc-tls, oidc-foreign,
#                                  oidc-issuer, registry, registry-auth)
#   scripts/test-env.sh start NAME start it again, with the same command, environment and ports
#   scripts/test-env.sh pause NAME SIGSTOP it: it keeps its ports, accepts connections, answers nothing
#   scripts/test-env.sh resume NAME SIGCONT it
#                                  (the fault tests in tests/faults.rs use these four)
#
# Every port is picked free at start. Nothing binds or connects beyond 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${KCONN_TEST_ENV_DIR:-$ROOT/target/test-env}
CACHE=${KCONN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kconn-test}
KAFKA_VERSION=4.1.1
KAFKA_LIB=$CACHE/kafka-$KAFKA_VERSION/lib
# Kubernetes and etcd, built from their Go modules by scripts/build-kubernetes.sh (about 8 minutes
# once; the Go module and build caches live under $CACHE/go).
K8S_VERSION=1.37.2
ETCD_VERSION=3.6.16
KUBE_BIN=$CACHE/kubernetes-v$K8S_VERSION-etcd-v$ETCD_VERSION
ETCD=$KUBE_BIN/etcd
APISERVER=$KUBE_BIN/kube-apiserver
CONTROLLER_MANAGER=$KUBE_BIN/kube-controller-manager
KUBECTL=$KUBE_BIN/kubectl
# kstatus and Argo CD's Lua runtime (scripts/judges), rebuilt when its sources change.
JUDGES=$CACHE/judges-$(cat "$ROOT"/scripts/judges/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)/judges
# Helm, built from its Go module (tests/chart.rs lints, renders and installs charts/kconn)
HELM_VERSION=v3.22.0
HELM=$CACHE/helm-$HELM_VERSION/helm
REALM=KCONN.TEST

say() { printf '[test-env %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# One file per concern: install, TLS material, the KDC, Kafka, the Kubernetes control plane; ports and
# processes in common.sh.
for part in common install tls kdc oidc registry kafka kube; do
  # shellcheck source=/dev/null
  . "$ROOT/scripts/env/$part.sh"
done

up() {
  install
  [ -f "$RUN/pids" ] && down >/dev/null 2>&1 || true
  rm -rf "$RUN"; mkdir -p "$RUN/log"; : >"$RUN/pids"; chmod 700 "$RUN"
  local t0=$SECONDS
  log4j_config
  say "TLS material"
  make_tls

  # Ports
  local P_KDC P_CTL P_PLAIN P_SASL P_SSL P_MTLS P_SASL_SSL P_BADADV P_NOWHERE P_API P_ETCD P_ETCD_PEER
  P_KDC=$(free_port); P_CTL=$(free_port); P_PLAIN=$(free_port); P_SASL=$(free_port); P_SSL=$(free_port)
  P_MTLS=$(free_port); P_SASL_SSL=$(free_port); P_API=$(free_port); P_ETCD=$(free_port); P_ETCD_PEER=$(free_port)
  local P_KCM; P_KCM=$(free_port)
  # BADADV: a PLAINTEXT listener that advertises a port nothing listens on (the advertised-listener trap).
  P_BADADV=$(free_port); P_NOWHERE=$(free_port)
  local P_FRONT P_MISNAMED; P_FRONT=$(free_port); P_MISNAMED=$(free_port)
  local P_OAUTH P_OIDC P_OIDC_TLS P_OIDC_FOREIGN P_OIDC_ISSUER
  P_OAUTH=$(free_port); P_OIDC=$(free_port); P_OIDC_TLS=$(free_port); P_OIDC_FOREIGN=$(free_port)
  P_OIDC_ISSUER=$(free_port)
  # COUNTED: a PLAINTEXT listener that advertises another port, where a test or benchmark runs a
  # counting proxy to the listener: every connection a client makes to this broker passes it.
  local P_COUNTED P_COUNTED_BROKER; P_COUNTED=$(free_port); P_COUNTED_BROKER=$(free_port)
  local P_REGISTRY P_REGISTRY_MGMT P_REGISTRY_AUTH P_REGISTRY_AUTH_MGMT P_REGISTRY_TLS
  P_REGISTRY=$(free_port); P_REGISTRY_MGMT=$(free_port); P_REGISTRY_AUTH=$(free_port); P_REGISTRY_AUTH_MGMT=$(free_port)
  P_REGISTRY_TLS=$(free_port)
  local C3_CTL=() C3_PLAIN=() i
  for i in 1 2 3; do C3_CTL+=("$(free_port)"); C3_PLAIN+=("$(free_port)"); done

  say "Kerberos KDC on 127.0.0.1:$P_KDC (realm $REALM)"
  start_kdc "$P_KDC"

  # Users: one password each, random per `up`.
  local SUPER_PW SASL_PW DESCRIBE_PW READ_PW NOGROUP_PW
  SUPER_PW=$(rand); SASL_PW=$(rand); DESCRIBE_PW=$(rand); READ_PW=$(rand); NOGROUP_PW=$(rand)
  local users=("admin:$SUPER_PW" "kconn-test:$SASL_PW" "describer:$DESCRIBE_PW" "reader:$READ_PW" "nogroup:$NOGROUP_PW")
  local plain_users="" scram=() u
  for u in "${users[@]}"; do
    plain_users+=" user_${u%%:*}=\"${u#*:}\""
    scram+=(--add-scram "SCRAM-SHA-256=[name=\"${u%%:*}\",password=\"${u#*:}\"]" --add-scram "SCRAM-SHA-512=[name=\"${u%%:*}\",password=\"${u#*:}\"]")
  done

  # OAuth clients: kconn-oauth (ACLs on test.*), kconn-oauth-other (tokens for another audience),
  # kconn-oauth-norights (no ACLs). The brokers fetch the provider's JWKS when they start.
  local OAUTH_SECRET OAUTH_OTHER_SECRET OAUTH_NORIGHTS_SECRET
  OAUTH_SECRET=$(rand); OAUTH_OTHER_SECRET=$(rand); OAUTH_NORIGHTS_SECRET=$(rand)
  say "OIDC providers on 127.0.0.1:$P_OIDC (http), :$P_OIDC_TLS (https), :$P_OIDC_FOREIGN (a foreign key), :$P_OIDC_ISSUER (another issuer)"
  start_oidc

  start_kafka

  local REGISTRY_USER=registry-user REGISTRY_PASSWORD; REGISTRY_PASSWORD=$(rand)
  say "schema registries on 127.0.0.1:$P_REGISTRY and :$P_REGISTRY_AUTH (basic auth)"
  start_registries

  say "starting etcd and kube-apiserver on 127.0.0.1:$P_API"
  start_apiserver "$P_API" "$P_ETCD" "$P_ETCD_PEER"

  setup_kafka
  wait_registries
  wait_apiserver "$P_API"
  start_controller_manager "$P_KCM"

  cat >"$RUN/env" <<EOF
# Written by scripts/test-env.sh up. Source it: . target/test-env/env
export KAFKA_PLAINTEXT=127.0.0.1:$P_PLAIN
export KAFKA_SASL_PLAINTEXT=127.0.0.1:$P_SASL
export KAFKA_SSL=127.0.0.1:$P_SSL
export KAFKA_MTLS=127.0.0.1:$P_MTLS
export KAFKA_SASL_SSL=127.0.0.1:$P_SASL_SSL
export KAFKA_ADVERTISED_UNREACHABLE=127.0.0.1:$P_BADADV
# Clients use KAFKA_COUNTED (advertised); a counting proxy there forwards to KAFKA_COUNTED_BROKER.
export KAFKA_COUNTED=127.0.0.1:$P_COUNTED
export KAFKA_COUNTED_BROKER=127.0.0.1:$P_COUNTED_BROKER
# SSL listeners for tls.serverName: FRONT's certificate names only front.kconn.test and it advertises
# MISNAMED, whose certificate names only other.kconn.test (neither names 127.0.0.1).
export KAFKA_TLS_FRONT=127.0.0.1:$P_FRONT
export KAFKA_TLS_MISNAMED=127.0.0.1:$P_MISNAMED
export KAFKA_TLS_DIR=$RUN/tls
export KAFKA_SUPER_USER=admin
export KAFKA_SUPER_PASSWORD=$SUPER_PW
export KAFKA_SASL_USER=kconn-test
export KAFKA_SASL_PASSWORD=$SASL_PW
export KAFKA_DESCRIBE_ONLY_USER=describer
export KAFKA_DESCRIBE_ONLY_PASSWORD=$DESCRIBE_PW
export KAFKA_READ_ONLY_USER=reader
export KAFKA_READ_ONLY_PASSWORD=$READ_PW
export KAFKA_NO_GROUP_USER=nogroup
export KAFKA_NO_GROUP_PASSWORD=$NOGROUP_PW
export KAFKA_MTLS_PRINCIPAL=kconn-mtls
export KRB5_CONFIG=$RUN/krb/krb5.conf
export KAFKA_KDC=127.0.0.1:$P_KDC
export KAFKA_KERBEROS_REALM=$REALM
export KAFKA_CLIENT_KEYTAB=$RUN/krb/client.keytab
export KAFKA_CLIENT_PRINCIPAL=kconn-client@$REALM
export KAFKA_OTHER_KEYTAB=$RUN/krb/other.keytab
export KAFKA_OTHER_PRINCIPAL=kconn-other@$REALM
export KAFKA_SERVICE_NAME=kafka
export KAFKA_OAUTH=127.0.0.1:$P_OAUTH
export OAUTH_TOKEN_URL=http://127.0.0.1:$P_OIDC/token
export OAUTH_TLS_TOKEN_URL=https://127.0.0.1:$P_OIDC_TLS/token
export OAUTH_FOREIGN_TOKEN_URL=http://127.0.0.1:$P_OIDC_FOREIGN/token
export OAUTH_WRONG_ISSUER_TOKEN_URL=http://127.0.0.1:$P_OIDC_ISSUER/token
export OAUTH_ISSUER=http://127.0.0.1:$P_OIDC
export OAUTH_AUDIENCE=kafka
export OAUTH_SCOPE=kafka
export OAUTH_CLIENT_ID=kconn-oauth
export OAUTH_CLIENT_SECRET=$OAUTH_SECRET
export OAUTH_OTHER_AUDIENCE_CLIENT_ID=kconn-oauth-other
export OAUTH_OTHER_AUDIENCE_CLIENT_SECRET=$OAUTH_OTHER_SECRET
export OAUTH_NO_RIGHTS_CLIENT_ID=kconn-oauth-norights
export OAUTH_NO_RIGHTS_CLIENT_SECRET=$OAUTH_NORIGHTS_SECRET
export SCHEMA_REGISTRY_URL=http://127.0.0.1:$P_REGISTRY$REGISTRY_PREFIX
export SCHEMA_REGISTRY_AUTH_URL=http://127.0.0.1:$P_REGISTRY_AUTH$REGISTRY_PREFIX
export SCHEMA_REGISTRY_TLS_URL=https://127.0.0.1:$P_REGISTRY_TLS$REGISTRY_PREFIX
export SCHEMA_REGISTRY_USER=$REGISTRY_USER
export SCHEMA_REGISTRY_PASSWORD=$REGISTRY_PASSWORD
# Python with confluent-kafka's registry serializers, and the producer that uses them.
export SERDES_PYTHON=$SERDES_VENV/bin/python
export SERDES_PRODUCER=$ROOT/scripts/registry/produce.py
export KAFKA_CLUSTER3=127.0.0.1:${C3_PLAIN[0]},127.0.0.1:${C3_PLAIN[1]},127.0.0.1:${C3_PLAIN[2]}
export KAFKA_CLUSTER3_BROKERS="127.0.0.1:${C3_PLAIN[0]} 127.0.0.1:${C3_PLAIN[1]} 127.0.0.1:${C3_PLAIN[2]}"
export KAFKA_VERSION=$KAFKA_VERSION
# The classpath of Kafka's own Java tools (org.apache.kafka.tools.TopicCommand and others), and kcat.
export KAFKA_CLASSPATH="$KAFKA_LIB/*"
export KCAT=$(command -v kcat)
export KUBECONFIG=$RUN/kubeconfig
export KUBE_CONTEXT_ADMIN=admin
export KUBE_CONTEXT_UNPRIVILEGED=unprivileged
export ETCD_ENDPOINT=http://127.0.0.1:$P_ETCD
export KCONN_TEST_ENV_PIDS=$RUN/pids
export KUBECTL=$KUBECTL
export KUBE_VERSION=$K8S_VERSION
export JUDGES=$JUDGES
export HELM=$HELM
export KAFKA_HOSTILE_KEYTAB=$RUN/krb/hostile.keytab
export KAFKA_INJECTION_MARKER=$RUN/krb/injected
EOF
  # Single-quoted: the value is shell syntax that must stay text when this file is sourced.
  printf "export KAFKA_HOSTILE_PRINCIPAL='%s'\n" "$(hostile_principal)" >>"$RUN/env"
  chmod 600 "$RUN/env"
  say "up in $((SECONDS - t0)) s; environment in $RUN/env"
}

case "${1:-}" in
  install) install ;;
  up)
    # A port taken between its choice and its bind fails one start; try again from scratch.
    for attempt in 1 2 3; do
      # A separate process per attempt keeps `set -e` in force (it is off inside an `if` condition).
      if bash "${BASH_SOURCE[0]}" up-once; then exit 0; fi
      say "start attempt $attempt failed; cleaning up"
      down
    done
    exit 1
    ;;
  up-once) up ;;
  down) down ;;
  env) cat "$RUN/env" ;;
  kill) kill_one "${2:?name}" ;;
  start) start_one "${2:?name}" ;;
  pause) signal_one "${2:?name}" STOP paused ;;
  resume) signal_one "${2:?name}" CONT resumed ;;
  *) echo "usage: $0 install|up|down|env|kill NAME|start NAME|pause NAME|resume NAME" >&2; exit 2 ;;
esac
