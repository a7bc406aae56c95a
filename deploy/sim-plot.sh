#!/bin/sh
# sim-plot.sh: accuracy per round of one or several frl-sim runs, as a PNG.
#
# usage: deploy/sim-plot.sh OUT.png RUN.json [RUN.json ...]
#   RUN.json  frl-sim --json summaries; a run's label is
#             "<attack> <malicious%>" (plus the policy when not none), or
#             LABEL=RUN.json to choose it.
# Environment: TITLE (plot title). Needs jq and gnuplot (pngcairo, or png).
set -eu
[ $# -ge 2 ] || { sed -n '2,9p' "$0"; exit 2; }
out=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plot=""
i=0
for arg in "$@"; do
    case "$arg" in
    *=*) label=${arg%%=*}; f=${arg#*=} ;;
    *) f=$arg; label="" ;;
    esac
    [ -s "$f" ] || { echo "sim-plot.sh: no such run $f" >&2; exit 2; }
    if [ -z "$label" ]; then
        label=$(jq -r '"\(.config.attack) \(.config.malicious * 100 | round)%" + (if .config.policy != "none" then " " + .config.policy else "" end)' "$f")
    fi
    i=$((i + 1))
    jq -r '.accuracy_per_round | to_entries[] | select(.value != null) | "\(.key + 1) \(.value)"' "$f" > "$tmp/$i.dat"
    plot="$plot${plot:+, }'$tmp/$i.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.6 title '$label'"
done
term=pngcairo
gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 || term=png
title=${TITLE:-FRL accuracy per round}
gnuplot <<GP
set terminal $term size 900,560
set output '$out'
set title '$title'
set xlabel 'round'
set ylabel 'test accuracy'
set key bottom right
set grid
set yrange [0:1]
plot $plot
GP
echo "wrote $out"
