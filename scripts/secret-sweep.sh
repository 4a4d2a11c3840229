#!/usr/bin/env bash
# Searches everything the test suite kept of kconn's output (operator logs and `kconn check` output, in
# target/test-env/captures/) for the test environment's secrets: every password, the client's private key
# (each line of its PEM body), the client keytab (raw and base64), the OAuth client secrets and any JWT.
# Prints what it searched and, for a leak, the file and which secret, never the secret itself. scripts/test.sh runs it after the tests.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${KCONN_TEST_ENV_DIR:-$ROOT/target/test-env}
CAPTURES=$RUN/captures
# shellcheck disable=SC1091
. "$RUN/env"
[ -d "$CAPTURES" ] && [ -n "$(ls -A "$CAPTURES")" ] || { echo "secret-sweep: no captures in $CAPTURES" >&2; exit 1; }
needles=$(mktemp); trap 'rm -f "$needles"' EXIT; chmod 600 "$needles"
names=()
add() { printf '%s\n' "$2" >>"$needles"; names+=("$1"); }
for v in KAFKA_SASL_PASSWORD KAFKA_SUPER_PASSWORD KAFKA_DESCRIBE_ONLY_PASSWORD KAFKA_READ_ONLY_PASSWORD KAFKA_NO_GROUP_PASSWORD \
  OAUTH_CLIENT_SECRET OAUTH_OTHER_AUDIENCE_CLIENT_SECRET OAUTH_NO_RIGHTS_CLIENT_SECRET SCHEMA_REGISTRY_PASSWORD; do
  add "$v" "${!v}"
  add "$v (base64)" "$(printf %s "${!v}" | base64 -w0)"
done
i=0
while read -r line; do
  i=$((i + 1)); [ ${#line} -ge 16 ] && add "line $i of the client private key" "$line"
done < <(grep -v -- '-----' "$KAFKA_TLS_DIR/client.key")
add "the client keytab (base64)" "$(base64 -w0 "$KAFKA_CLIENT_KEYTAB")"
# Any OAuth token: a JWT starts with the base64url of '{"alg":' (or of '{"typ":' or '{"kid":').
add "an OAuth token (a JWT header)" "eyJhbGciOi"
add "an OAuth token (a JWT header)" "eyJ0eXAiOi"
add "an OAuth token (a JWT header)" "eyJraWQiOi"
files=$(find "$CAPTURES" -type f | wc -l); bytes=$(cat "$CAPTURES"/* | wc -c)
leaks=0; n=0
while IFS= read -r needle; do
  n=$((n + 1))
  if hits=$(grep -rlF -- "$needle" "$CAPTURES"); then
    leaks=1
    echo "secret-sweep: ${names[$((n - 1))]} appears in: $hits" >&2
  fi
done <"$needles"
echo "secret-sweep: searched $files captured outputs ($bytes bytes) for $n secret forms: $([ $leaks = 0 ] && echo none found || echo LEAKS)"
exit $leaks
