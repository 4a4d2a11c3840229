#!/usr/bin/env bash
# Installs the Debian packages kconn needs to build and run: librdkafka's SSL, SASL, Kerberos (GSSAPI)
# and libcurl (the OIDC token flow of SASL/OAUTHBEARER) build and runtime libraries, and kinit, which
# librdkafka runs to get Kerberos tickets.
# Installs only what is missing; prints nothing when everything is there.
set -euo pipefail
PACKAGES=(gcc g++ make pkg-config perl libssl-dev libsasl2-dev libsasl2-modules libsasl2-modules-gssapi-mit
  zlib1g-dev libzstd-dev libcurl4-openssl-dev krb5-user ca-certificates)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "[install-deps] installing Debian packages: ${missing[*]}" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
