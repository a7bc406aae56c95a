#!/usr/bin/env python3
"""Replays of one saved model in frl and in the reference (docs/experiments.md 4.1.5).

  tools/replay_stats.py FRL.jsonl:REF.txt ...

Each pair is the same start (frl-sim --init-ranking FILE, tools/ref_aligned.py
--init_ranking FILE) and the same clients in every round (the same
--schedule), played by both programs; only batch orders, colluder draws and
float rounding differ. FRL.jsonl is frl-sim's --per-round-log, REF.txt the
printed output of tools/ref_aligned.py. Prints, as markdown, each pair's
mean accuracy over its rounds and the difference, the mean accuracy by
rounds since the start over the pairs that reach that round, and the mean
per-pair difference with its standard error (pairs are independent: they
differ in their schedules)."""
import math
import os
import statistics as st
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drop_stats import frl_log, ref_log  # noqa: E402


def main():
    pairs = sys.argv[1:]
    if not pairs or any(p.count(":") != 1 for p in pairs):
        sys.exit(__doc__)
    diffs, by_round = [], {}
    print("| pair | rounds | frl mean | reference mean | frl − reference (points) |")
    print("|---|---|---|---|---|")
    for p in pairs:
        f_path, r_path = p.split(":")
        f, r = frl_log(f_path), ref_log(r_path)
        common = sorted(set(f) & set(r))
        if not common:
            sys.exit("%s: no round in common" % p)
        if len(common) != len(f) or len(common) != len(r):
            print("warning: %s: %d frl rounds, %d reference rounds; comparing the %d in common" %
                  (p, len(f), len(r), len(common)), file=sys.stderr)
        mf = st.mean(f[e] for e in common)
        mr = st.mean(r[e] for e in common)
        diffs.append(100 * (mf - mr))
        for i, e in enumerate(common):
            by_round.setdefault(i, ([], []))
            by_round[i][0].append(f[e])
            by_round[i][1].append(r[e])
        print("| %s | %d | %.3f | %.3f | %+.1f |" % (p, len(common), mf, mr, diffs[-1]))
    print()
    print("| rounds since the start | pairs | frl | reference |")
    print("|---|---|---|---|")
    for i in sorted(by_round):
        a, b = by_round[i]
        print("| %d | %d | %.3f | %.3f |" % (i + 1, len(a), st.mean(a), st.mean(b)))
    print()
    se = st.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    print("frl − reference, mean over %d pairs of each pair's mean accuracy: %+.1f ± %.1f points" %
          (len(diffs), st.mean(diffs), se))


if __name__ == "__main__":
    main()
