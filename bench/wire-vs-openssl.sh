#!/bin/sh
# Full TLS 1.3 handshakes: frl's transport side by side with OpenSSL's own
# `openssl s_time` client against `openssl s_server`, same certificates
# (deploy/gen-certs.sh), same machine, one run. s_time makes one connection
# at a time, so its wall rate is latency-bound; the comparable figure is
# its "connections per user second", i.e. client CPU per handshake, next to
# frl-bench wire's handshake_client_cpu_us.
#
#   bench/wire-vs-openssl.sh [path/to/frl-bench] [seconds]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bench=${1:-$here/build/bin/frl-bench}
secs=${2:-8}
port=44330
dir=$(mktemp -d /tmp/frl-wire-vs-openssl-XXXXXX)
srv=
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null || true
  rm -rf "$dir" # private keys
}
trap cleanup EXIT INT TERM
"$here/deploy/gen-certs.sh" "$dir" >/dev/null 2>&1

pin() { if command -v taskset >/dev/null 2>&1; then taskset -c "$@"; else shift; "$@"; fi; }

pin 0 openssl s_server -accept "127.0.0.1:$port" -cert "$dir/server.crt" -key "$dir/server.key" -tls1_3 \
  -naccept 1000000 -quiet >/dev/null 2>&1 &
srv=$!
sleep 1
out=$(pin 1 openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" -CAfile "$dir/ca.crt" -verify 2 2>&1 |
  grep "connections/user sec" | head -1)
kill "$srv" 2>/dev/null || true
wait "$srv" 2>/dev/null || true
srv=
# "N connections in X.XXs; Y connections/user sec, ..."
ossl_per_user_s=$(echo "$out" | sed -n 's/.*; *\([0-9.]*\) connections\/user sec.*/\1/p')
ossl_us=$(awk -v r="$ossl_per_user_s" 'BEGIN { if (r > 0) printf "%.0f", 1e6 / r; else print "null" }')

frl=$(OPENBLAS_NUM_THREADS=1 "$bench" wire --json --certs "$dir" --mb 20 --reps 1 --conns 100)
frl_us=$(echo "$frl" | sed -n 's/.*"handshake_client_cpu_us": \([0-9.]*\).*/\1/p')
frl_rate=$(echo "$frl" | sed -n 's/.*"handshakes_per_s": \([0-9.]*\).*/\1/p')
ratio=$(awk -v a="$ossl_us" -v b="$frl_us" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "null" }')
printf '{"openssl_s_time_client_user_us_per_handshake": %s, "frl_client_cpu_us_per_handshake": %s, ' "$ossl_us" "$frl_us"
printf '"openssl_over_frl_client_cpu": %s, "frl_handshakes_per_s": %s, "openssl_version": "%s"}\n' "$ratio" "$frl_rate" \
  "$(openssl version | cut -d' ' -f2)"
