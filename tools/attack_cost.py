#!/usr/bin/env python3
"""What each attacked round cost, in frl-sim runs and reference runs
(docs/experiments.md 4.1.7).

  tools/attack_cost.py --frl REVERSE.jsonl ... --ref REVERSE.txt ...

--frl takes frl-sim per-round logs (--per-round-log) of attacked runs,
--ref the output of tools/ref_aligned.py for attacked runs (its
"# honest" and "# measures" lines). A round's cost is the accuracy of the
honest clients' plain vote alone (honest_accuracy) minus the accuracy of
the round's actual vote, in points, both from the same start and on the
same test images: what that round's malicious rankings took, without the
luck of the rest of the run. Prints, as markdown, per program and by the
number of attackers in the round: rounds, mean cost ± standard error,
mean attack_flips; then over all attacked rounds with the standard error
taken over runs (the rounds of one run are not independent), and
frl - reference: overall, per number of attackers, and by attackers
weighted by both programs' rounds (runs draw different mixes of 1- to
4-attacker rounds, and a 4-attacker round costs far more)."""
import argparse
import json
import math
import statistics as st


def frl_rounds(path):
    out = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("honest_accuracy") is None:
                continue
            out.append((d["round"], d["malicious"], 100 * (d["honest_accuracy"] - d["accuracy"]), d["attack_flips"]))
    return out


def ref_rounds(path):
    acc, k, honest, flips = {}, {}, {}, {}
    with open(path) as f:
        for line in f:
            t = line.split()
            if line.startswith("round ") and " mal " in line:
                acc[int(t[1])] = float(t[5])
                k[int(t[1])] = int(t[3])
            elif line.startswith("# honest "):
                honest[int(t[2])] = json.loads(line.split(None, 3)[3])["honest_accuracy"]
            elif line.startswith("# measures "):
                flips[int(t[2])] = json.loads(line.split(None, 3)[3])["attack_flips"]
    return [(r, k[r], 100 * (honest[r] - acc[r]), flips[r]) for r in sorted(honest) if r in acc]


def mean_se(v):
    m = st.mean(v)
    return m, (st.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else float("nan"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frl", nargs="*", default=[], metavar="REVERSE.jsonl")
    ap.add_argument("--ref", nargs="*", default=[], metavar="REVERSE.txt")
    ap.add_argument("--from-round", type=int, default=0)
    a = ap.parse_args()
    runs = {}
    for prog, paths, load in (("frl", a.frl, frl_rounds), ("reference", a.ref, ref_rounds)):
        runs[prog] = []
        for p in paths:
            rs = [r for r in load(p) if r[0] >= a.from_round]
            if not rs:
                raise SystemExit("attack_cost: %s has no attacked round with honest_accuracy" % p)
            runs[prog].append(rs)
    progs = [p for p in runs if runs[p]]
    if not progs:
        raise SystemExit("attack_cost: no runs (--frl, --ref)")
    ks = sorted(set(r[1] for p in progs for rs in runs[p] for r in rs))
    print("| attackers in the round (rounds >= %d) | %s |" % (a.from_round, " | ".join(
        "%s: rounds, cost (points), attack_flips" % p for p in progs)))
    print("|---|%s" % ("---|" * len(progs)))
    by_k = {p: {k: [r for rs in runs[p] for r in rs if r[1] == k] for k in ks} for p in progs}
    for k in ks:
        cells = []
        for p in progs:
            v = by_k[p][k]
            if not v:
                cells.append("-")
                continue
            m, se = mean_se([r[2] for r in v])
            cells.append("%d, %+.2f ± %.2f, %.2f%%" % (len(v), m, se, 100 * st.mean(r[3] for r in v)))
        print("| %d | %s |" % (k, " | ".join(cells)))
    print()
    per_run = {p: [st.mean(r[2] for r in rs) for rs in runs[p]] for p in progs}
    for p in progs:
        m, se = mean_se(per_run[p])
        print("%s: %d runs, %d attacked rounds; mean cost per attacked round %+.2f ± %.2f points (se over runs)"
              % (p, len(runs[p]), sum(len(rs) for rs in runs[p]), m, se))
    if len(progs) == 2 and all(len(per_run[p]) > 1 for p in progs):
        x, y = per_run["frl"], per_run["reference"]
        d = st.mean(x) - st.mean(y)
        se = math.sqrt(st.variance(x) / len(x) + st.variance(y) / len(y))
        print("frl - reference, mean cost per attacked round: %+.2f ± %.2f points" % (d, se))
        # The sampling gives each run its own mix of 1- to 4-attacker rounds, and a
        # 4-attacker round costs ten times a 1-attacker one: compare like with like.
        strat, var, wsum = 0.0, 0.0, 0
        for k in ks:
            vx, vy = [r[2] for r in by_k["frl"][k]], [r[2] for r in by_k["reference"][k]]
            if len(vx) > 1 and len(vy) > 1:
                d = st.mean(vx) - st.mean(vy)
                v = st.variance(vx) / len(vx) + st.variance(vy) / len(vy)
                print("  %d attackers: %+.2f ± %.2f points (rounds pooled)" % (k, d, math.sqrt(v)))
                w = len(vx) + len(vy)
                strat += w * d
                var += w * w * v
                wsum += w
        if wsum:
            print("frl - reference, by attackers, weighted by both programs' rounds: %+.2f ± %.2f points"
                  % (strat / wsum, math.sqrt(var) / wsum))


if __name__ == "__main__":
    main()
