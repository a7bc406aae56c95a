#!/bin/sh
# sim-grid.sh: run frl-sim over attack x malicious fraction x policy and
# write a table like the FRL paper's (mean accuracy of the last 5 rounds,
# and the final accuracy on the full test set).
#
# usage: deploy/sim-grid.sh [-o OUTDIR] [-b FRL_SIM] [-a "ATTACKS"] [-f "FRACTIONS"]
#                           [-p "POLICIES"] [-j JOBS] [-- EXTRA frl-sim OPTIONS]
#   -o OUTDIR     results directory (default sim-grid-out)
#   -b FRL_SIM    the frl-sim binary (default build-sim-rel/bin/frl-sim)
#   -a ATTACKS    default "none reverse random boundary labelflip"
#   -f FRACTIONS  default "0 0.1 0.2 0.3"
#   -p POLICIES   default "none" (none flag drop downweight)
#   -j JOBS       runs at the same time (default 1); each run gets the
#                 extra options, e.g. --threads 2
# Everything after "--" goes to every frl-sim run (model, rounds, seed...).
# Fraction 0 is run once per policy (the attack does not matter: tested)
# and reported for every attack. Runs whose JSON exists are skipped, so an
# interrupted grid can be resumed. Runs under nice. Needs jq.
#
# Outputs: OUTDIR/<attack>_<fraction>_<policy>.json (summary) and .jsonl
# (per round), OUTDIR/table.md (Markdown) and OUTDIR/table.tsv.
set -eu
OUT=sim-grid-out
BIN=build-sim-rel/bin/frl-sim
ATTACKS="none reverse random boundary labelflip"
FRACTIONS="0 0.1 0.2 0.3"
POLICIES="none"
JOBS=1
while [ $# -gt 0 ]; do
    case "$1" in
    -o) OUT=$2; shift 2 ;;
    -b) BIN=$2; shift 2 ;;
    -a) ATTACKS=$2; shift 2 ;;
    -f) FRACTIONS=$2; shift 2 ;;
    -p) POLICIES=$2; shift 2 ;;
    -j) JOBS=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "sim-grid.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v jq >/dev/null || { echo "sim-grid.sh: needs jq" >&2; exit 2; }
[ -x "$BIN" ] || { echo "sim-grid.sh: no frl-sim at $BIN" >&2; exit 2; }
mkdir -p "$OUT"
echo "$BIN $*" > "$OUT/command.txt"

name() { echo "$1_$2_$3"; }

# The list of runs (attack fraction policy), fraction 0 once per policy.
runs() {
    for p in $POLICIES; do
        for f in $FRACTIONS; do
            if [ "$f" = 0 ] || [ "$f" = 0.0 ]; then
                echo "none 0 $p"
                continue
            fi
            for a in $ATTACKS; do echo "$a $f $p"; done
        done
    done
}

run_one() {
    a=$1 f=$2 p=$3
    shift 3
    n=$(name "$a" "$f" "$p")
    if [ -s "$OUT/$n.json" ]; then
        echo "skip $n (done)"
        return 0
    fi
    echo "run  $n"
    nice "$BIN" "$@" --malicious "$f" --attack "$a" --policy "$p" --quiet \
        --json "$OUT/$n.json" --per-round-log "$OUT/$n.jsonl" >"$OUT/$n.log" 2>&1 ||
        echo "FAILED $n (see $OUT/$n.log)"
}

runs | {
    i=0
    while read -r a f p; do
        run_one "$a" "$f" "$p" "$@" &
        i=$((i + 1))
        if [ $((i % JOBS)) -eq 0 ]; then wait; fi
    done
    wait
}

# Table: one row per (policy, attack), one column per fraction:
# "mean of last 5 / final" accuracy in percent.
cell() {
    f="$OUT/$1.json"
    if [ -s "$f" ]; then
        jq -r '"\(.mean_last5 * 1000 | round / 10) / \(.final_accuracy * 1000 | round / 10)"' "$f"
    else
        echo "-"
    fi
}
{
    printf '| policy | attack |'
    for f in $FRACTIONS; do printf ' %s%% |' "$(echo "$f * 100" | bc -l | sed 's/\.0*$//')"; done
    printf '\n|---|---|'
    for f in $FRACTIONS; do printf -- '---|'; done
    printf '\n'
    for p in $POLICIES; do
        for a in $ATTACKS; do
            printf '| %s | %s |' "$p" "$a"
            for f in $FRACTIONS; do
                if [ "$f" = 0 ] || [ "$f" = 0.0 ]; then n=$(name none 0 "$p"); else n=$(name "$a" "$f" "$p"); fi
                printf ' %s |' "$(cell "$n")"
            done
            printf '\n'
        done
    done
} > "$OUT/table.md"
{
    printf 'policy\tattack\tfraction\tmean_last5\tfinal_accuracy\tseconds_per_round\tcpu_seconds_per_round\n'
    for p in $POLICIES; do
        for a in $ATTACKS; do
            for f in $FRACTIONS; do
                if [ "$f" = 0 ] || [ "$f" = 0.0 ]; then n=$(name none 0 "$p"); else n=$(name "$a" "$f" "$p"); fi
                [ -s "$OUT/$n.json" ] || continue
                jq -r --arg p "$p" --arg a "$a" --arg f "$f" \
                    '[$p, $a, $f, .mean_last5, .final_accuracy, .seconds_per_round, .cpu_seconds_per_round] | @tsv' "$OUT/$n.json"
            done
        done
    done
} > "$OUT/table.tsv"
cat "$OUT/table.md"
