#!/usr/bin/env bash
# Makes a self-signed test CA, a server certificate for 127.0.0.1 and localhost signed by it, and a
# client certificate for mutual TLS, all ECDSA P-256, valid 30 days, with the openssl command line
# (a tool here, never linked into saythat). For tests and a quick start, not for production.
#
#   scripts/tls-cert.sh [DIR]      (default ./tls; refuses to overwrite an existing ca.pem)
#
# Writes DIR/ca.pem, ca.key, server.pem (the server's certificate, then the CA: the chain
# --tls-cert wants), server.key, client.pem, client.key. Then:
#
#   saythat serve --listen 127.0.0.1:8443 --framing http --tls-cert DIR/server.pem --tls-key DIR/server.key
#   curl --cacert DIR/ca.pem https://127.0.0.1:8443/hello
set -euo pipefail
dir=${1:-tls}
command -v openssl >/dev/null || { echo "tls-cert.sh needs openssl (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
[ -e "$dir/ca.pem" ] && { echo "$dir/ca.pem exists: choose another directory or remove it" >&2; exit 1; }
days=30
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/CN=saythat test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$dir/ca.pem"

# leaf NAME CN EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
leaf() {
  local name=$1 cn=$2 usage=$3 san=${4:-} ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  key "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -sha256 -days "$days" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$ext" "$dir/$name.csr"
}
leaf server localhost serverAuth "IP:127.0.0.1,IP:::1,DNS:localhost"
cat "$dir/server.crt" "$dir/ca.pem" >"$dir/server.pem"
leaf client saythat-client clientAuth
mv "$dir/client.crt" "$dir/client.pem"
rm -f "$dir/server.crt" "$dir/ca.srl"
echo "wrote $dir/{ca,server,client}.pem and their keys (valid $days days)"
