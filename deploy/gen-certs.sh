#!/usr/bin/env bash
# Creates a federation CA, a server certificate and client certificates with
# the openssl command line, for tests and local runs (in the manner of redis
# utils/gen-test-certs.sh).
#
#   deploy/gen-certs.sh DIR [client-id ...]
#
# Writes into DIR (created with mode 0700):
#   ca.crt ca.key                   the federation CA (EC P-256, 10 years)
#   server.crt server.key           CN=frl-server, SAN DNS:localhost, IP:127.0.0.1
#                                   (add names with FRL_SERVER_SANS="DNS:a,IP:10.0.0.1")
#   client-ID.crt client-ID.key     CN=ID (the Hello client_id in mTLS mode)
#
# Idempotent: existing files are kept, only missing ones are made (a new
# client certificate is signed by the existing CA). Private keys are 0600.
# Never commit the output (.gitignore excludes *.key *.crt *.pem).
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -lt 1 ]] && exit 2
  exit 0
fi
dir=$1; shift
days=${FRL_CERT_DAYS:-3650}
sans=${FRL_SERVER_SANS:-}

# A client id must be usable as a file name and as a Hello client_id.
valid_id() { [[ "$1" =~ ^[A-Za-z0-9._:@-]{1,128}$ && "$1" != .* ]]; }
for id in "$@"; do
  if ! valid_id "$id"; then
    echo "gen-certs: bad client id '$id' (allowed: [A-Za-z0-9._:@-], 1-128 chars)" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"

command -v openssl >/dev/null || { echo "gen-certs: openssl not found" >&2; exit 1; }

newkey() { # file
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.tmp" 2>/dev/null
  chmod 600 "$1.tmp"
  mv "$1.tmp" "$1"
}

if [[ ! -s ca.key || ! -s ca.crt ]]; then
  rm -f ca.key ca.crt
  newkey ca.key
  openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/O=frl/CN=frl federation CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt.tmp
  mv ca.crt.tmp ca.crt
  echo "gen-certs: made $dir/ca.crt" >&2
fi

sign() { # name cn ext-file
  local name=$1 cn=$2 ext=$3
  [[ -s $name.key ]] || newkey "$name.key"
  openssl req -new -key "$name.key" -subj "/O=frl/CN=$cn" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
    -extfile "$ext" -out "$name.crt.tmp" 2>/dev/null
  mv "$name.crt.tmp" "$name.crt"
  rm -f "$name.csr" "$ext"
  echo "gen-certs: made $dir/$name.crt (CN=$cn)" >&2
}

if [[ ! -s server.crt || ! -s server.key ]]; then
  ext=$(mktemp ./server.ext.XXXXXX)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=serverAuth"
    echo "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1${sans:+,$sans}"
  } >"$ext"
  sign server frl-server "$ext"
fi

for id in "$@"; do
  [[ -s client-$id.crt && -s client-$id.key ]] && continue
  ext=$(mktemp ./client.ext.XXXXXX)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=clientAuth"
  } >"$ext"
  sign "client-$id" "$id" "$ext"
done
chmod 600 ./*.key
chmod 644 ./*.crt
