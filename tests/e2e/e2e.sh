#!/usr/bin/env bash
# End-to-end scenarios of frl-server with clients on 127.0.0.1.
#
#   tests/e2e/e2e.sh SCENARIO
#
# Scenarios: mtls token kill9_resume client_killed invalid_ranking reconnect
# below_quorum sigterm mismatch (see each function). Run by ctest
# (tests/e2e/CMakeLists.txt), which sets:
#   FRL_SERVER FRL_FAKE_CLIENT FRL_STATE_CHECK FRL_SOURCE_DIR FRL_E2E_TMP
# FRL_E2E_CLIENT may name another client binary that takes the same flags
# (the real frl-client); by default the fake client is used.
#
# Every wait is a wait-for-condition with a bounded timeout; every process
# started here is killed on exit.
set -uo pipefail

scenario=${1:?usage: e2e.sh SCENARIO}
: "${FRL_SERVER:?}" "${FRL_FAKE_CLIENT:?}" "${FRL_STATE_CHECK:?}" "${FRL_SOURCE_DIR:?}"
CLIENT=${FRL_E2E_CLIENT:-$FRL_FAKE_CLIENT}
tmp_root=${FRL_E2E_TMP:-/tmp/frl-e2e}
mkdir -p "$tmp_root"
T=$(mktemp -d "$tmp_root/$scenario.XXXXXX")
FMNIST=${FRL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

fail() {
  echo "E2E FAIL [$scenario]: $*" >&2
  echo "---- server log (tail) ----" >&2
  tail -n 40 "$T"/server*.log 2>/dev/null >&2
  echo "---- client logs (tail) ----" >&2
  for f in "$T"/client-*.log; do [[ -f $f ]] && { echo "== $f" >&2; tail -n 8 "$f" >&2; }; done
  echo "(files in $T)" >&2
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  while ! "$@" >/dev/null 2>&1; do
    ((SECONDS >= end)) && fail "timed out after ${limit}s waiting for: $what"
    sleep 0.1
  done
}

# wait_exit PID SECONDS: waits for PID (a child of this shell) to end and
# sets EXIT_STATUS to its status, or to "timeout".
wait_exit() {
  local pid=$1 end=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= end)); then
      EXIT_STATUS=timeout
      return
    fi
    sleep 0.1
  done
  wait "$pid"
  EXIT_STATUS=$?
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

PORT=$(free_port)
CLIENT_IDS=(c0 c1 c2 c3)
"$FRL_SOURCE_DIR/deploy/gen-certs.sh" "$T/certs" "${CLIENT_IDS[@]}" cx >/dev/null 2>&1 || fail "gen-certs.sh failed"

SERVER_TLS=(--cert "$T/certs/server.crt" --key "$T/certs/server.key" --ca "$T/certs/ca.crt")
server_args() { # common settings: mlp, 3 rounds of 4 clients
  echo --listen "127.0.0.1:$PORT" --model mlp --rounds 3 --per-round 4 --min-clients 4 --quorum 3 \
    --round-deadline 20 --retry-wait 0.5 --max-retries 2 --eval-every 1 --eval-n 500 --final-eval-n 1000 --eval-data "$FMNIST" \
    --state-dir "$T/state" --metrics-file "$T/metrics.jsonl" --log-level info --seed 42
}

start_server() { # LOGNAME extra-args...
  local log=$1; shift
  # shellcheck disable=SC2046
  "$FRL_SERVER" $(server_args) "${SERVER_TLS[@]}" "$@" >"$T/$log.out" 2>"$T/$log.log" &
  SERVER_PID=$!
  pids+=("$SERVER_PID")
  wait_for 30 "server listening" grep -q "event=server_start" "$T/$log.log"
}

start_client() { # ID extra-args...
  local id=$1; shift
  "$CLIENT" --server "127.0.0.1:$PORT" --server-name localhost --ca "$T/certs/ca.crt" \
    --cert "$T/certs/client-$id.crt" --key "$T/certs/client-$id.key" --client-id "$id" \
    --reconnect-base-ms 100 --reconnect-max-ms 1000 "$@" >"$T/client-$id.out" 2>"$T/client-$id.log" &
  CLIENT_PID[$id]=$!
  pids+=("${CLIENT_PID[$id]}")
}
declare -A CLIENT_PID

metrics_rounds() { [[ -f $T/metrics.jsonl ]] && wc -l <"$T/metrics.jsonl" || echo 0; }
metrics_has_round() { grep -q "\"round\":$1," "$T/metrics.jsonl" 2>/dev/null; }
metric_of_round() { # ROUND KEY -> value
  python3 - "$T/metrics.jsonl" "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["round"] == int(sys.argv[2]):
        v = m
        for k in sys.argv[3].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        print(v)
EOF
}

expect_server_exit() { # STATUS SECONDS
  wait_exit "$SERVER_PID" "$2"
  [[ "$EXIT_STATUS" == "$1" ]] || fail "server exit status $EXIT_STATUS, expected $1"
}

expect_client_exit() { # ID STATUS SECONDS
  wait_exit "${CLIENT_PID[$1]}" "$3"
  [[ "$EXIT_STATUS" == "$2" ]] || fail "client $1 exit status $EXIT_STATUS, expected $2"
}

check_full_run() { # ROUNDS ACCEPTED_PER_ROUND
  local r
  for ((r = 1; r <= $1; r++)); do
    metrics_has_round "$r" || fail "no metrics line for round $r"
  done
  if [[ -n "${2:-}" ]]; then
    for ((r = 1; r <= $1; r++)); do
      [[ $(metric_of_round "$r" accepted) == "$2" ]] || fail "round $r: accepted $(metric_of_round "$r" accepted), expected $2"
    done
  fi
  [[ -s "$T/state/model.frlq" ]] || fail "no final model file"
  grep -q "event=final_model" "$T/server.log" || fail "no final_model log line"
  "$FRL_STATE_CHECK" "$T/state" | grep -q "rounds_done=$1 " || fail "state dir does not say rounds_done=$1"
}

# --- scenarios ---------------------------------------------------------------

# Server + 4 clients x 3 rounds over mutual TLS; the Prometheus endpoint answers.
sc_mtls() {
  local mport
  mport=$(free_port)
  start_server server --metrics-listen "127.0.0.1:$mport"
  for id in "${CLIENT_IDS[@]}"; do start_client "$id" --delay-ms 300; done
  wait_for 60 "round 1 done" metrics_has_round 1
  curl -sf "http://127.0.0.1:$mport/metrics" >"$T/prom.txt" || fail "metrics endpoint did not answer"
  grep -q '^frl_rounds_done [1-3]$' "$T/prom.txt" || fail "metrics endpoint lacks frl_rounds_done"
  grep -q '^frl_clients_connected 4$' "$T/prom.txt" || fail "metrics endpoint: clients_connected != 4"
  expect_server_exit 0 90
  for id in "${CLIENT_IDS[@]}"; do expect_client_exit "$id" 0 20; done
  check_full_run 3 4
  grep -q "test accuracy" "$T/server.out" || fail "final accuracy not printed"
}

# Token mode: only the server has a certificate; a wrong token is refused.
sc_token() {
  : >"$T/tokens"
  for id in "${CLIENT_IDS[@]}"; do
    echo "$id $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$T/tokens"
  done
  SERVER_TLS=(--cert "$T/certs/server.crt" --key "$T/certs/server.key" --auth token --token-file "$T/tokens")
  start_server server
  for id in "${CLIENT_IDS[@]}"; do
    "$CLIENT" --server "127.0.0.1:$PORT" --ca "$T/certs/ca.crt" --client-id "$id" --token-file "$T/tokens" \
      --delay-ms 200 >"$T/client-$id.out" 2>"$T/client-$id.log" &
    CLIENT_PID[$id]=$!
    pids+=("${CLIENT_PID[$id]}")
  done
  "$CLIENT" --server "127.0.0.1:$PORT" --ca "$T/certs/ca.crt" --client-id c0 --token deadbeef --max-retries 1 \
    >"$T/client-bad.out" 2>"$T/client-bad.log" &
  local bad=$!
  pids+=("$bad")
  wait_exit "$bad" 30
  [[ $EXIT_STATUS == 1 ]] || fail "a client with a wrong token was not refused"
  grep -q "FRL_EAUTH" "$T/client-bad.log" || fail "wrong token: no FRL_EAUTH"
  expect_server_exit 0 90
  for id in "${CLIENT_IDS[@]}"; do expect_client_exit "$id" 0 20; done
  check_full_run 3 4
}

# kill -9 of the server mid-run; restart on the same state dir; the run
# completes and no completed round is lost or repeated.
sc_kill9_resume() {
  start_server server --rounds 6
  for id in "${CLIENT_IDS[@]}"; do start_client "$id" --delay-ms 600; done
  wait_for 60 "round 2 done" metrics_has_round 2
  kill -9 "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null
  local before state_done
  before=$(metrics_rounds)
  state_done=$("$FRL_STATE_CHECK" "$T/state" | sed -n 's/^rounds_done=\([0-9]*\).*/\1/p')
  [[ -n "$state_done" ]] || fail "state dir unreadable after kill -9"
  ((state_done >= before)) || fail "state has $state_done rounds but $before were reported complete"
  mv "$T/server.log" "$T/server-first.log"
  start_server server --rounds 6
  grep -q "event=state_resume.*rounds_done=$state_done " "$T/server.log" || fail "restart did not resume at round $((state_done + 1))"
  expect_server_exit 0 120
  for id in "${CLIENT_IDS[@]}"; do expect_client_exit "$id" 0 30; done
  # Each round 1..6 reported, none twice except one killed mid-report.
  local r n
  for r in 1 2 3 4 5 6; do
    n=$(grep -c "\"round\":$r," "$T/metrics.jsonl")
    ((n >= 1)) || fail "round $r missing from metrics"
  done
  grep "event=round_open" "$T/server.log" | head -1 | grep -q "round=$((state_done + 1))/" || fail "first round after restart is not $((state_done + 1))"
  check_full_run 6
}

# A client dies (like kill -9) on receiving round 2's task: round 2 closes
# at the deadline with the quorum (3 of 4), and the federation finishes.
sc_client_killed() {
  start_server server --round-deadline 4 --min-clients 3
  for id in c0 c1 c2; do start_client "$id" --delay-ms 200; done
  start_client c3 --delay-ms 200 --die-on-round 2
  expect_server_exit 0 90
  expect_client_exit c3 9 5
  for id in c0 c1 c2; do expect_client_exit "$id" 0 20; done
  [[ $(metric_of_round 2 accepted) == 3 ]] || fail "round 2 accepted $(metric_of_round 2 accepted), expected 3"
  python3 -c "import sys; sys.exit(0 if float('$(metric_of_round 2 timings.collect_s)') >= 3.5 else 1)" ||
    fail "round 2 did not wait for its deadline"
  check_full_run 3
}

# A client submits a ranking with a duplicate edge: rejected with
# FRL_EVOTE_DUPLICATE (it hears the reason), the round still completes.
sc_invalid_ranking() {
  start_server server
  for id in c0 c1 c2; do start_client "$id" --delay-ms 200; done
  start_client c3 --delay-ms 200 --invalid-on-round 2
  expect_server_exit 0 90
  for id in "${CLIENT_IDS[@]}"; do expect_client_exit "$id" 0 20; done
  [[ $(metric_of_round 2 rejected) == 1 ]] || fail "round 2 rejected != 1"
  [[ $(metric_of_round 2 rejected_reasons.FRL_EVOTE_DUPLICATE) == 1 ]] || fail "round 2: no FRL_EVOTE_DUPLICATE reason"
  [[ $(metric_of_round 2 accepted) == 3 ]] || fail "round 2 accepted != 3"
  grep -q "fake_error.*FRL_EVOTE_DUPLICATE\|FRL_EVOTE_DUPLICATE" "$T/client-c3.log" || fail "client did not receive the reason"
  grep -q "event=vote_reject.*FRL_EVOTE_DUPLICATE" "$T/server.log" || fail "server did not log the rejection"
  check_full_run 3
}

# A client drops its connection on round 2's task and reconnects: it is
# welcomed again, gets the task again, and its vote counts.
sc_reconnect() {
  start_server server
  for id in c0 c1 c2; do start_client "$id" --delay-ms 200; done
  start_client c3 --delay-ms 200 --disconnect-on-round 2
  expect_server_exit 0 90
  for id in "${CLIENT_IDS[@]}"; do expect_client_exit "$id" 0 20; done
  grep -q "event=task_resend client=c3 round=2" "$T/server.log" || fail "task not re-sent to the reconnected client"
  check_full_run 3 4
}

# Below quorum: 2 clients, quorum 2, one dies. The server retries with a new
# sample, then exits with status 3 and a clear message.
sc_below_quorum() {
  start_server server --per-round 2 --min-clients 2 --quorum 2 --round-deadline 2 --retry-wait 0.3 --max-retries 2
  start_client c0 --delay-ms 100 --max-retries 3
  start_client c1 --delay-ms 100 --die-on-round 1
  expect_server_exit 3 60
  grep -q "did not reach its quorum" "$T/server.log" || fail "no clear quorum message"
  [[ $(grep -c "event=round_failed" "$T/server.log") == 3 ]] || fail "expected 3 failed tries (1 + 2 retries)"
  "$FRL_STATE_CHECK" "$T/state" | grep -q "rounds_done=0 " || fail "state dir inconsistent after quorum exit"
}

# SIGTERM mid-run: exit 0, every handle closed, state dir consistent; a
# restart resumes from it.
sc_sigterm() {
  start_server server --rounds 20
  for id in "${CLIENT_IDS[@]}"; do start_client "$id" --delay-ms 500; done
  wait_for 60 "round 2 done" metrics_has_round 2
  kill -TERM "$SERVER_PID"
  expect_server_exit 0 20
  grep -q "event=server_stop" "$T/server.log" || fail "no server_stop log line"
  local done_n
  done_n=$("$FRL_STATE_CHECK" "$T/state" | sed -n 's/^rounds_done=\([0-9]*\).*/\1/p')
  [[ -n "$done_n" ]] || fail "state dir unreadable after SIGTERM"
  (( done_n >= 2 && done_n >= $(metrics_rounds) )) || fail "state lost rounds: $done_n"
  ls "$T/state" | grep -q '\.tmp\.' && fail "temporary files left in the state dir"
  mv "$T/server.log" "$T/server-first.log"
  start_server server --rounds $((done_n + 1))
  expect_server_exit 0 60
  check_full_run $((done_n + 1))
}

# A client of another model is refused with FRL_EMISMATCH; a restart with an
# incompatible config on an existing state dir is refused (status 4).
sc_mismatch() {
  start_server server --rounds 1 --per-round 1 --min-clients 1 --quorum 1
  "$CLIENT" --server "127.0.0.1:$PORT" --ca "$T/certs/ca.crt" --cert "$T/certs/client-cx.crt" \
    --key "$T/certs/client-cx.key" --client-id cx --model lenet >"$T/client-cx.out" 2>"$T/client-cx.log" &
  local bad=$!
  pids+=("$bad")
  wait_exit "$bad" 30
  [[ $EXIT_STATUS == 1 ]] || fail "a lenet client was not refused by an mlp server"
  grep -q "FRL_EMISMATCH" "$T/client-cx.log" || fail "no FRL_EMISMATCH for the wrong model"
  start_client c0 --model mlp --delay-ms 100
  expect_server_exit 0 60
  expect_client_exit c0 0 20
  "$FRL_SERVER" $(server_args) "${SERVER_TLS[@]}" --keep 0.3 >"$T/server-bad.out" 2>"$T/server-bad.log"
  local st=$?
  [[ $st == 4 ]] || fail "incompatible config: exit $st, expected 4"
  grep -q "belongs to another federation" "$T/server-bad.log" || fail "no clear message for an incompatible state dir"
}

# The real frl-client (FRL_REAL_CLIENT), 4 daemons x 3 rounds over mTLS,
# training mlp on 600-image IID parts of Fashion-MNIST; then kill -9 of the
# server and a restart: the real clients reconnect and finish.
sc_real_client() {
  : "${FRL_REAL_CLIENT:?frl-client not built}"
  start_server server --rounds 4
  local i=0
  for id in "${CLIENT_IDS[@]}"; do
    "$FRL_REAL_CLIENT" --server "127.0.0.1:$PORT" --server-name localhost --ca "$T/certs/ca.crt" \
      --cert "$T/certs/client-$id.crt" --key "$T/certs/client-$id.key" --client-id "$id" \
      --data "$FMNIST" --partition iid --shard "$i" --shards 100 --quiet \
      --reconnect-base-ms 100 --reconnect-max-ms 1000 >"$T/client-$id.out" 2>"$T/client-$id.log" &
    CLIENT_PID[$id]=$!
    pids+=("${CLIENT_PID[$id]}")
    i=$((i + 1))
  done
  wait_for 120 "round 2 done" metrics_has_round 2
  kill -9 "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null
  mv "$T/server.log" "$T/server-first.log"
  start_server server --rounds 4
  expect_server_exit 0 150
  for id in "${CLIENT_IDS[@]}"; do expect_client_exit "$id" 0 30; done
  check_full_run 4
}

case "$scenario" in
  real_client | mtls | token | kill9_resume | client_killed | invalid_ranking | reconnect | below_quorum | sigterm | mismatch) "sc_$scenario" ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
echo "E2E PASS [$scenario] ($SECONDS s)"
rm -rf "$T"
