#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
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
  # The OAUTH listener fetches the provider's JWKS; Kafka 4 fetches only from URLs allowed here.
  start_bg "$1" java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" \
    -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="http://127.0.0.1:$P_OIDC/jwks" \
    -Djava.security.krb5.conf="$RUN/krb/krb5.conf" -Dsun.security.krb5.disableReferrals=true \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$2"
}

# Writes the brokers' configurations, formats their storage and starts them: the single node with every
# listener, and the 3-broker cluster. Uses up()'s ports and accounts.
start_kafka() {
  # ---- the main single-node cluster
  local K1=$RUN/kafka
  mkdir -p "$K1/data"
  local tls="$RUN/tls"
  {
    kafka_common 1 "$K1/data"
    cat <<EOF
process.roles=broker,controller
controller.quorum.voters=1@127.0.0.1:$P_CTL
listeners=CONTROLLER://127.0.0.1:$P_CTL,PLAINTEXT://127.0.0.1:$P_PLAIN,SASL_PLAINTEXT://127.0.0.1:$P_SASL,SSL://127.0.0.1:$P_SSL,MTLS://127.0.0.1:$P_MTLS,SASL_SSL://127.0.0.1:$P_SASL_SSL,BADADV://127.0.0.1:$P_BADADV,FRONT://127.0.0.1:$P_FRONT,MISNAMED://127.0.0.1:$P_MISNAMED,OAUTH://127.0.0.1:$P_OAUTH,COUNTED://127.0.0.1:$P_COUNTED_BROKER
advertised.listeners=PLAINTEXT://127.0.0.1:$P_PLAIN,SASL_PLAINTEXT://127.0.0.1:$P_SASL,SSL://127.0.0.1:$P_SSL,MTLS://127.0.0.1:$P_MTLS,SASL_SSL://127.0.0.1:$P_SASL_SSL,BADADV://127.0.0.1:$P_NOWHERE,FRONT://127.0.0.1:$P_MISNAMED,MISNAMED://127.0.0.1:$P_MISNAMED,OAUTH://127.0.0.1:$P_OAUTH,COUNTED://127.0.0.1:$P_COUNTED
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL,BADADV:PLAINTEXT,FRONT:SSL,MISNAMED:SSL,OAUTH:SASL_PLAINTEXT,COUNTED:PLAINTEXT
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
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
listener.name.oauth.oauthbearer.sasl.oauthbearer.jwks.endpoint.url=http://127.0.0.1:$P_OIDC/jwks
listener.name.oauth.oauthbearer.sasl.oauthbearer.expected.audience=kafka
listener.name.oauth.oauthbearer.sasl.oauthbearer.expected.issuer=http://127.0.0.1:$P_OIDC
# Without this line Kafka 4.1's default validator checks no signature, issuer or audience (the env
# tests keep a foreign-key and a wrong-audience token refused, so that this cannot come back).
listener.name.oauth.sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator
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

  say "starting Kafka: 1 node with 6 client listeners, and a 3-broker cluster"
  start_kafka_node kafka "$K1/server.properties"
  for n in 1 2 3; do start_kafka_node "kafka3-$n" "$RUN/kafka3-$n/server.properties"; done
}

# Waits for every listener, then creates the ACLs and checks the 3-broker cluster (scripts/kafka/Setup.java).
setup_kafka() {
  # Every listener: a broker that could not bind one exits, and wait_port says so at once.
  for p in "$P_PLAIN" "$P_SASL" "$P_SSL" "$P_MTLS" "$P_SASL_SSL" "$P_BADADV" "$P_FRONT" "$P_MISNAMED" "$P_OAUTH" "$P_COUNTED_BROKER"; do wait_port "$p" 90 kafka; done
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
# kconn-oauth (OAUTHBEARER, User:<sub>): full rights on test. topics; kconn-oauth-norights: none
acl User:kconn-oauth TOPIC PREFIXED test. ALL
acl User:kconn-oauth GROUP LITERAL * ALL
acl User:kconn-oauth CLUSTER LITERAL kafka-cluster DESCRIBE
EOF
  java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" -cp "$KAFKA_LIB/*" \
    "$ROOT/scripts/kafka/Setup.java" "127.0.0.1:$P_PLAIN" 1 "$RUN/acls.plan" >&2 || die "Kafka setup failed (log: $RUN/log/kafka.log)"
  for n in 1 2 3; do wait_port "${C3_PLAIN[$((n-1))]}" 90 "kafka3-$n"; done
  java "${JAVA_OPTS[@]}" -Dlog4j2.configurationFile="$RUN/log4j2.properties" -cp "$KAFKA_LIB/*" \
    "$ROOT/scripts/kafka/Setup.java" "127.0.0.1:${C3_PLAIN[0]}" 3 >&2 || die "3-broker cluster did not come up (logs: $RUN/log/kafka3-*.log)"
}
