#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
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
