#!/usr/bin/env bash
# Makes test certificates for saythat's TLS, with openssl, into DIR (default ./tls):
#   ca.pem                    a self-signed CA (ECDSA P-256), to trust: --tls-ca, curl --cacert
#   server.pem, server.key    a server certificate for 127.0.0.1, ::1 and localhost, signed by the
#                             CA (server.pem is the chain: the leaf, then the CA)
#   client.pem, client.key    a client certificate (CN saythat-client) for mutual TLS
# All keys are ECDSA P-256, valid 365 days (Mozilla's limit for a server certificate is 366). For
# tests and a quick start only: the CA's key (ca.key) sits beside them; a real deployment gets
# its certificates from its own CA.
#
#   scripts/tls-cert.sh /tmp/tls
#   saythat send --tls --tls-ca /tmp/tls/ca.pem --addr 127.0.0.1:8443 hello
set -euo pipefail

dir=${1:-tls}
if ! command -v openssl >/dev/null 2>&1; then
    echo "tls-cert.sh: openssl is not installed; install it (apt-get install openssl) and run again" >&2
    exit 2
fi
mkdir -p "$dir"
cd "$dir"
days=365
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=saythat test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem

# $1: name, $2: subject CN, $3: extensions (one per line).
leaf() {
    local ext
    ext=$(mktemp)
    printf '%s\n' "$3" >"$ext"
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile "$ext" -out "$1.crt" 2>/dev/null
    rm -f "$ext" "$1.csr"
}

leaf server localhost "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
cat server.crt ca.pem >server.pem
rm -f server.crt

leaf client saythat-client "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
mv client.crt client.pem
rm -f ca.srl
chmod 644 ca.pem server.pem client.pem

openssl verify -CAfile ca.pem server.pem >/dev/null
openssl verify -CAfile ca.pem client.pem >/dev/null
echo "tls-cert.sh: wrote $(pwd)/{ca.pem,ca.key,server.pem,server.key,client.pem,client.key}"
