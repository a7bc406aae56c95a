#!/usr/bin/env bash
# The README's main command: a whole federation on this machine.
#
#   deploy/demo.sh
#
# It installs missing Debian packages (deploy/setup-debian.sh), builds what
# is missing (Release, in build/), makes throwaway certificates
# (deploy/gen-certs.sh), starts frl-server and N frl-client daemons on
# 127.0.0.1 over mutual TLS on Fashion-MNIST, shows one line per round, and
# ends by printing the final model's test accuracy. Everything it started is
# stopped at the end, also on Ctrl-C.
#
# Settings (environment; defaults measured to finish in well under 10
# minutes on 2 cores and end above 80% test accuracy, see
# docs/operations.md "Demo"):
#   FRL_DEMO_CLIENTS=20        client daemons (processes; ~65 MB each)
#   FRL_DEMO_SHARDS=100        the training set is cut in this many parts;
#                              client i holds part i (600 images each), as in
#                              the reference's 100-client setting
#   FRL_DEMO_PER_ROUND=10      clients selected per round
#   FRL_DEMO_ROUNDS=30         rounds
#   FRL_DEMO_PARTITION=iid     iid | dirichlet:A | shards:K (frl-client --partition)
#   FRL_DEMO_EVAL_EVERY=5      progress evaluation every N rounds (1,000 test images)
#   FRL_DEMO_SEED=1            federation seed (fixed: the demo is reproducible)
#   FRL_DEMO_EPOCHS=1          local epochs
#   FRL_DEMO_MODEL=lenet
#   FRL_DEMO_DIR=build/demo    certificates, state, logs, metrics
#   FRL_BUILD_DIR=build
#   FRL_DEMO_PORT=7700         (FRL_DEMO_PORT=0: any free port)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

clients=${FRL_DEMO_CLIENTS:-20}
shards=${FRL_DEMO_SHARDS:-100}
per_round=${FRL_DEMO_PER_ROUND:-10}
rounds=${FRL_DEMO_ROUNDS:-30}
eval_every=${FRL_DEMO_EVAL_EVERY:-5}
seed=${FRL_DEMO_SEED:-1}
partition=${FRL_DEMO_PARTITION:-iid}
epochs=${FRL_DEMO_EPOCHS:-1}
model=${FRL_DEMO_MODEL:-lenet}
build=${FRL_BUILD_DIR:-build}
dir=${FRL_DEMO_DIR:-$build/demo}
port=${FRL_DEMO_PORT:-7700}
data=/usr/share/datasets/fashion-mnist

t0=$SECONDS
say() { printf '\033[1m[demo %3ds]\033[0m %s\n' $((SECONDS - t0)) "$*"; }

# 1. Packages (only what is missing) and the build (only what is missing).
deploy/setup-debian.sh
if [[ ! -f $build/CMakeCache.txt ]]; then
  say "configuring frl (Release) in $build/ ..."
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if [[ ! -x $build/bin/frl-server || ! -x $build/bin/frl-client ]]; then
  say "building frl-server and frl-client in $build/ (a minute or two) ..."
fi
# Incremental: a no-op when everything is up to date.
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target frl-server frl-client >"$build/demo-build.log" 2>&1 ||
  { tail -n 30 "$build/demo-build.log" >&2; exit 1; }
server_bin=$root/$build/bin/frl-server
client_bin=$root/$build/bin/frl-client

if [[ "$port" == 0 ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi

# 2. Throwaway certificates: a CA, the server, one per client.
ids=()
for ((i = 0; i < clients; i++)); do ids+=("client-$i"); done
mkdir -p "$dir"
deploy/gen-certs.sh "$dir/certs" "${ids[@]}" 2>/dev/null
rm -rf "$dir/state" "$dir/logs" "$dir/metrics.jsonl"
mkdir -p "$dir/logs"

# 3. Start everything; stop everything on exit or Ctrl-C.
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap 'say "interrupted: stopping"; stop_all; exit 130' INT TERM
trap stop_all EXIT

say "starting frl-server on 127.0.0.1:$port ($model, $rounds rounds, $per_round of $clients clients per round, $partition)"
"$server_bin" --listen "127.0.0.1:$port" --cert "$dir/certs/server.crt" --key "$dir/certs/server.key" \
  --ca "$dir/certs/ca.crt" --model "$model" --rounds "$rounds" --per-round "$per_round" --min-clients "$clients" \
  --quorum 0.8 --round-deadline 600 --retry-wait 5 --max-retries 2 --local-epochs "$epochs" --seed "$seed" \
  --eval-every "$eval_every" --eval-n 1000 --eval-data "$data" --state-dir "$dir/state" --metrics-file "$dir/metrics.jsonl" \
  --model-out "$dir/model.frlq" >"$dir/logs/server.out" 2>"$dir/logs/server.log" &
server=$!
pids+=("$server")
for _ in $(seq 300); do
  grep -q "event=server_start" "$dir/logs/server.log" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/logs/server.log" >&2; exit 1; }
  sleep 0.1
done

((shards >= clients)) || shards=$clients
say "starting $clients frl-client daemons (mutual TLS; client i holds part i of $shards of the training set)"
for ((i = 0; i < clients; i++)); do
  "$client_bin" --server "127.0.0.1:$port" --server-name localhost --ca "$dir/certs/ca.crt" \
    --cert "$dir/certs/client-client-$i.crt" --key "$dir/certs/client-client-$i.key" --client-id "client-$i" \
    --data "$data" --partition "$partition" --shard "$i" --shards "$shards" --quiet \
    >"$dir/logs/client-$i.out" 2>"$dir/logs/client-$i.log" &
  pids+=("$!")
done

# 4. Progress: one line per completed round, from the server's log.
tail --pid="$server" -n +1 -F "$dir/logs/server.log" 2>/dev/null | while IFS= read -r line; do
  case "$line" in
    *event=round_done*)
      r=$(sed -n 's/.* round=\([0-9]*\/[0-9]*\) .*/\1/p' <<<"$line")
      acc=$(sed -n 's/.* acc=\([^ ]*\) .*/\1/p' <<<"$line")
      acc_txt=""
      [[ "$acc" != "-" ]] && acc_txt="  test accuracy (1000 images) $acc"
      printf '\033[1m[demo %3ds]\033[0m round %-6s votes %s  %ss%s\n' $((SECONDS - t0)) "$r" \
        "$(sed -n 's/.* accepted=\([0-9]*\) .*/\1/p' <<<"$line")" \
        "$(sed -n 's/.* round_s=\([^ ]*\) .*/\1/p' <<<"$line")" "$acc_txt"
      ;;
    *event=final_start*) printf '\033[1m[demo %3ds]\033[0m all rounds done: building the integer-only model and testing it on 10,000 images\n' $((SECONDS - t0)) ;;
    *event=server_stop*) break ;;
    *level=error*) echo "$line" ;;
  esac
done &
pids+=("$!")

set +e
wait "$server"
status=$?
set -e
sleep 0.3
if [[ $status -ne 0 ]]; then
  say "frl-server failed (exit status $status); last lines of $dir/logs/server.log:"
  tail -n 20 "$dir/logs/server.log" >&2
  exit "$status"
fi
result=$(grep "final model" "$dir/logs/server.out" || true)
acc=$(sed -n 's/.*test accuracy \([0-9.]*\) (integer.*/\1/p' <<<"$result")
facc=$(sed -n 's/.*), \([0-9.]*\) (float.*/\1/p' <<<"$result")
say "done in $((SECONDS - t0)) s"
echo
echo "  final model:   $dir/model.frlq  ($(stat -c %s "$dir/model.frlq" 2>/dev/null || echo '?') bytes, integer-only inference)"
echo "  test accuracy: $acc  (Fashion-MNIST test set, 10,000 images; float masked model: $facc)"
echo "  metrics:       $dir/metrics.jsonl   logs: $dir/logs/"
echo
