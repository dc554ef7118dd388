#!/usr/bin/env bash
# Runs the example on this machine: chatd in API Gateway mode on :3000, the
# handler behind its wrapper on :8080, and nginx with a self-signed
# certificate on https://localhost:8443 in front of chatd. Then, in another
# terminal: NODE_EXTRA_CA_CERTS=<the folder printed below>/cert.pem node client.mjs
# Needs go, node (npm install here first), nginx and openssl. Ctrl-C stops it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Shared by chatd and the handler: the key that signs chatd's requests, and
# the AWS credentials chatd accepts on @connections (SigV4).
secret=$(openssl rand -hex 32)
key_id=AKIAEXAMPLECHATD
key_secret=$(openssl rand -hex 20)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
sed -e "s|@DIR@|$dir|g" -e "s|@TLS_PORT@|8443|g" -e "s|@CHATD_PORT@|3000|g" "$here/nginx.conf" >"$dir/nginx.conf"

(cd "$repo" && go build -o "$dir/chatd" ./cmd/chatd)
CHATD_LISTEN=127.0.0.1:3000 \
CHATD_HTTP_TRUSTED_PROXIES=127.0.0.1 \
CHATD_API_AWS_ACCESS_KEY_ID=$key_id CHATD_API_AWS_SECRET_ACCESS_KEY=$key_secret \
CHATD_HOOKS_SECRET=$secret \
CHATD_HOOKS_APIGATEWAY_URL=http://127.0.0.1:8080/ \
CHATD_HOOKS_APIGATEWAY_DOMAIN_NAME=localhost:8443 \
CHATD_HOOKS_APIGATEWAY_STAGE=production \
  "$dir/chatd" & pids+=($!)

PORT=8080 CHATD_HOOKS_SECRET=$secret NODE_EXTRA_CA_CERTS=$dir/cert.pem \
AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$key_secret \
  node "$here/server.mjs" & pids+=($!)

nginx -p "$dir" -c "$dir/nginx.conf" -g "daemon off;" & pids+=($!)

echo "chatd behind https://localhost:8443; certificate in $dir/cert.pem"
wait
