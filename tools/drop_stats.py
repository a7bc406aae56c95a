#!/usr/bin/env python3
"""Pooled attack drops of frl-sim runs and reference runs (docs/experiments.md 4.1.3).

  tools/drop_stats.py --frl NONE.jsonl:REVERSE.jsonl ... --ref NONE.txt:REVERSE.txt ...

Each pair is one seed: the run without attack and the run with it.
--frl takes frl-sim per-round logs (--per-round-log), --ref the anchor
script's (or tools/ref_aligned.py's) printed output. Prints, as markdown,
each seed's last-5 mean and 20-round mean accuracy with and without
attack and the drops, then the pooled means with standard errors and
frl - reference with one standard error of the difference.

For the drops it also prints each program's median, a bootstrap interval
of frl - reference (runs resampled within each program, --bootstrap
resamples, fixed seed) and the Mann-Whitney rank test: a few collapsed
runs dominate a mean of so few, and these do not rest on it.

--by-attackers also prints, per program, the mean accuracy of the attacked
runs' rounds by the number of attackers in the round (rounds from
--from-round on, 5 by default): what a round with k reversed votes leaves,
pooled over seeds."""
import argparse
import json
import math
import random
import statistics as st
import sys


def frl_log(path, attackers=None):
    acc = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            acc[d["round"]] = d["accuracy"]
            if attackers is not None:
                attackers[d["round"]] = d["malicious"]
    return acc


def ref_log(path, attackers=None):
    acc = {}
    with open(path) as f:
        for line in f:
            if line.startswith("round ") and " mal " in line:
                t = line.split()
                acc[int(t[1])] = float(t[5])
                if attackers is not None:
                    attackers[int(t[1])] = int(t[3])
    return acc


def summary(acc):
    n = len(acc)
    if n < 5:
        raise SystemExit("a run with fewer than 5 rounds")
    v = [acc[r] for r in sorted(acc)]
    return sum(v[-5:]) / 5, sum(v) / n


def mean_se(v):
    m = st.mean(v)
    return m, (st.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float("nan"))


def cell(v):
    """Mean ± standard error and count of a list of accuracies, for a table cell."""
    if len(v) > 1:
        return "%.3f ± %.3f (%d rounds)" % (mean_se(v) + (len(v),))
    return "%.3f (1 round)" % v[0] if v else "-"


def bootstrap_diff(x, y, n, q=(0.05, 0.95)):
    """Quantiles q of mean(x*) - mean(y*) over n resamples of each list."""
    rng = random.Random(12345)
    d = sorted(st.mean(rng.choices(x, k=len(x))) - st.mean(rng.choices(y, k=len(y))) for _ in range(n))
    return [d[min(n - 1, int(p * n))] for p in q]


def mann_whitney(x, y):
    """U of x against y (ties count a half) and the two-sided p-value of the
    normal approximation with the tie correction."""
    allv = sorted(x + y)
    ranks = {}
    i = 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j] == allv[i]:
            j += 1
        ranks[allv[i]] = (i + j + 1) / 2.0
        i = j
    n1, n2 = len(x), len(y)
    u = sum(ranks[v] for v in x) - n1 * (n1 + 1) / 2.0
    counts = {}
    for v in allv:
        counts[v] = counts.get(v, 0) + 1
    n = n1 + n2
    ties = sum(t ** 3 - t for t in counts.values())
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    z = (u - n1 * n2 / 2.0) / math.sqrt(var) if var > 0 else 0.0
    return u, math.erfc(abs(z) / math.sqrt(2.0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frl", nargs="*", default=[], metavar="NONE:REVERSE")
    ap.add_argument("--ref", nargs="*", default=[], metavar="NONE:REVERSE")
    ap.add_argument("--by-attackers", action="store_true")
    ap.add_argument("--from-round", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=10000, metavar="N")
    a = ap.parse_args()
    rows = {}
    by_k = {}
    lengths = set()
    for prog, pairs, load in (("frl", a.frl, frl_log), ("reference", a.ref, ref_log)):
        rows[prog] = []
        by_k[prog] = {}
        for p in pairs:
            none, rev = p.split(":")
            k = {}
            acc = load(rev, k)
            acc_none = load(none)
            lengths.update((len(acc), len(acc_none)))
            rows[prog].append((p, summary(acc_none), summary(acc)))
            for r, v in acc.items():
                if r >= a.from_round:
                    by_k[prog].setdefault(k[r], []).append(v)
    if len(lengths) > 1:
        # an unfinished run would be pooled with the last 5 rounds it has
        print("drop_stats: warning: the runs have different numbers of rounds: %s" % sorted(lengths), file=sys.stderr)
    print("| run | no attack: last 5 / mean | attack: last 5 / mean | drop, last 5 | drop, mean |")
    print("|---|---|---|---|---|")
    for prog, rs in rows.items():
        for p, (n5, nm), (r5, rm) in rs:
            print("| %s %s | %.3f / %.3f | %.3f / %.3f | %.1f | %.1f |" % (prog, p.split(":")[1], n5, nm, r5, rm,
                                                                        100 * (n5 - r5), 100 * (nm - rm)))
    print()
    print("| pooled, mean ± se | runs | no attack: last 5 / mean | attack: last 5 / mean | drop, last 5 | drop, mean |")
    print("|---|---|---|---|---|---|")
    cols = [lambda r: r[1][0], lambda r: r[1][1], lambda r: r[2][0], lambda r: r[2][1],
            lambda r: 100 * (r[1][0] - r[2][0]), lambda r: 100 * (r[1][1] - r[2][1])]
    for prog, rs in rows.items():
        if not rs:
            continue
        c = [mean_se([f(r) for r in rs]) for f in cols]
        print("| %s | %d | %.3f ± %.3f / %.3f ± %.3f | %.3f ± %.3f / %.3f ± %.3f | %.1f ± %.1f | %.1f ± %.1f |"
              % ((prog, len(rs)) + tuple(x for m in c for x in m)))
    if len(rows["frl"]) > 1 and len(rows["reference"]) > 1:
        print()
        names = ["no attack, last 5", "no attack, mean", "attack, last 5", "attack, mean", "drop, last 5", "drop, mean"]
        for name, f in zip(names, cols):
            x = [f(r) for r in rows["frl"]]
            y = [f(r) for r in rows["reference"]]
            scale = 1 if name.startswith("drop") else 100
            d = scale * (st.mean(x) - st.mean(y))
            se = scale * math.sqrt(st.variance(x) / len(x) + st.variance(y) / len(y))
            print("frl - reference, %s: %+.1f ± %.1f points" % (name, d, se))
        print()
        for name, f in zip(names[4:], cols[4:]):
            x = [f(r) for r in rows["frl"]]
            y = [f(r) for r in rows["reference"]]
            lo, hi = bootstrap_diff(x, y, a.bootstrap)
            u, pv = mann_whitney(x, y)
            print("%s: median frl %.1f, reference %.1f; frl - reference 90%% bootstrap interval [%+.1f, %+.1f]; "
                  "Mann-Whitney U %.1f of %d, p = %.2f" % (name, st.median(x), st.median(y), lo, hi, u, len(x) * len(y), pv))
    if a.by_attackers:
        progs = [p for p in by_k if by_k[p]]
        print()
        print("| attackers in the round (rounds >= %d) | %s |" % (a.from_round, " | ".join(progs)))
        print("|---|%s" % ("---|" * len(progs)))
        for k in sorted(set(k for p in progs for k in by_k[p])):
            print("| %d | %s |" % (k, " | ".join(cell(by_k[p].get(k, [])) for p in progs)))


if __name__ == "__main__":
    main()
