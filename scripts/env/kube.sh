#!/usr/bin/env bash
# Sourced by scripts/test-env.sh (the dispatcher); not run on its own.
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
