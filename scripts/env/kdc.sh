#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
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


# `kconn-x$(touch${IFS}<run>/krb/injected)@REALM`, literally: a shell would create the marker file.
hostile_principal() { printf 'kconn-x$(touch${IFS}%s/krb/injected)@%s' "$RUN" "$REALM"; }
