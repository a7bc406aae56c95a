#!/usr/bin/env python3
"""Runs the reference (../shared/anchors/frl_torch_ref.py, unmodified on
disk) aligned with an frl-sim run, and prints frl-sim's per-round measures
for it, so that the two programs can be compared round by round with the
sampling luck taken out (docs/experiments.md §4.1.2).

Three options are added to the reference's own:
  --frl_init        the network of frl's --seed (weights and initial scores,
                    re-derived with the pure-Python ChaCha20 of
                    tools/gen_golden_lenet.py, then cached: see
                    _frl_network)
  --parts FILE      the clients' data: frl-sim --partition-out FILE
  --schedule FILE   each round's clients: the "selected" lists of an
                    frl-sim --per-round-log
Two more for replays from a given model:
  --init_ranking FILE  start from a frl-sim ranking file (--ranking-out)
                       instead of the initial scores' ranking
  --batch_seed N       seed of the reference's batch-order generator
                       (default: its own, seed + 1)
What stays the reference's own: batch order, colluder draws, float
rounding. After each round's vote it prints
  # measures R {"agree_benign": ..., "mask_churn": ..., "attack_flips": ...}
with frl-sim's definitions (docs/experiments.md, per-round record):
Spearman of each honest vote with the previous global ranking (edge-
weighted over layers, averaged over honest votes), the fraction of edges
whose mask bit the new global ranking changed, and the fraction whose bit
differs from that of the honest votes' plain vote (0 without attackers).
After its evaluation, in a round with attackers and honest clients, it
prints
  # honest R {"honest_accuracy": ...}
frl-sim's honest_accuracy: the honest votes' plain vote evaluated on the
same images. Neither takes a random draw, so the run is otherwise the
reference's own.

The reference's text is patched in memory; a patch that no longer applies
stops the run with its name.

Run (needs python3-torch), e.g.:
  /usr/bin/python3 tools/ref_aligned.py --rounds 20 --nclients 100 --per_round 10 \\
      --local_epochs 1 --eval_n 2000 --threads 1 --seed 0 --frl_init \\
      --parts part_s0.txt --schedule rev_s0.jsonl --at_fraction 0.2 --rand_mal_clients 5
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.environ.get("FRL_REF_SCRIPT", os.path.join(HERE, "..", "..", "shared", "anchors", "frl_torch_ref.py"))

PATCHES = [
    ("options",
     '''    ap.add_argument("--json_out", default="")''',
     '''    ap.add_argument("--json_out", default="")
    ap.add_argument("--frl_init", action="store_true")
    ap.add_argument("--parts", default="")
    ap.add_argument("--schedule", default="")
    ap.add_argument("--init_ranking", default="")
    ap.add_argument("--batch_seed", type=int, default=None)'''),
    ("partition",
     '''    cx = [xtr[torch.from_numpy(p)] for p in parts]''',
     '''    if args.parts:
        parts = [np.array([int(t) for t in line.split()], dtype=np.int64) for line in open(args.parts)]
        if len(parts) != args.nclients:
            sys.exit("--parts has %d clients, --nclients is %d" % (len(parts), args.nclients))
    cx = [xtr[torch.from_numpy(p)] for p in parts]'''),
    ("network",
     '''    model = LeNetFRL(args.sparsity, args.mask_impl)
''',
     '''    model = LeNetFRL(args.sparsity, args.mask_impl)
    if args.frl_init:
        import hashlib
        fseed = hashlib.blake2b(b"frl seed v1" + struct.pack("<Q", args.seed), digest_size=32).digest()
        for (name, m), w, sc in zip(model.masked_layers(), *_frl_network(fseed)):
            m.weight.copy_(w.view_as(m.weight))
            m.scores.data.copy_(sc.detach().view_as(m.scores))
    sched = _frl_schedule(args.schedule) if args.schedule else None
    if sched and len(sched) < args.rounds:
        sys.exit("--schedule has %d rounds, --rounds is %d" % (len(sched), args.rounds))
'''),
    ("init_ranking",
     '''    global_scores = {name: m.scores.detach().reshape(-1).clone() for name, m in model.masked_layers()}
''',
     '''    global_scores = {name: m.scores.detach().reshape(-1).clone() for name, m in model.masked_layers()}
    if args.init_ranking:
        if not args.frl_init:
            sys.exit("--init_ranking needs --frl_init: an frl ranking means something only on frl's network")
        for name, order in _frl_ranking(args.init_ranking, n_edges, fseed).items():
            global_scores[name] = torch.empty_like(sorted_init[name])
            global_scores[name][order] = sorted_init[name]
        load_global(model, global_scores)
    if args.batch_seed is not None:
        gen = torch.Generator().manual_seed(args.batch_seed)
'''),
    ("keep_by_pos",
     '''    n_att = int(args.nclients * args.at_fraction)''',
     '''    keep_by_pos = {}
    for name, n in n_edges.items():
        a = sorted_init[name].abs()
        keep_by_pos[name] = a > torch.kthvalue(a, int((1 - args.sparsity) * n)).values
    n_att = int(args.nclients * args.at_fraction)'''),
    ("sampling",
     '''        while True:
            users = rng_np.choice(args.nclients, args.per_round, replace=False)''',
     '''        while True:
            if sched:
                users = np.array(sorted(sched[e]), dtype=np.int64)
                mal = users[users < n_att]
                ben = users[users >= n_att]
                break
            users = rng_np.choice(args.nclients, args.per_round, replace=False)'''),
    ("measures",
     '''        t_vote = time.perf_counter()
        for name in n_edges:''',
     '''        t_vote = time.perf_counter()
        _honest = _frl_measures(e, n_edges, uploads, len(ben), global_scores, sorted_init, keep_by_pos, positions_of,
                                vote_layer)
        for name in n_edges:'''),
    ("honest_accuracy",
     '''        acc, loss = evaluate(model, xte[:args.eval_n], yte[:args.eval_n])
''',
     '''        acc, loss = evaluate(model, xte[:args.eval_n], yte[:args.eval_n])
        if _honest is not None:
            load_global(model, _honest)
            print("# honest", e, json.dumps({"honest_accuracy": evaluate(model, xte[:args.eval_n], yte[:args.eval_n])[0]}),
                  flush=True)
            load_global(model, global_scores)
'''),
]

MEASURES = '''
_FRL_TOOLS = %r


def _frl_network(fseed):
    """frl's network of fseed: (weights, initial scores), per layer. Re-deriving
    it in pure Python takes most of a minute, so it is kept in a cache file
    ($FRL_CACHE_DIR, else $XDG_CACHE_HOME/frl or ~/.cache/frl) named by the
    seed and the deriving scripts' text; an unreadable cache is rebuilt."""
    import hashlib
    sys.path.insert(0, _FRL_TOOLS)
    import gen_golden_lenet
    import gen_golden_lenet_epoch
    key = hashlib.blake2b(fseed, digest_size=16)
    for mod in (gen_golden_lenet, gen_golden_lenet_epoch):
        key.update(open(mod.__file__, "rb").read())
    d = os.environ.get("FRL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "frl")
    path = os.path.join(d, "lenet-network-%%s.pt" %% key.hexdigest())
    try:
        ws, ss = torch.load(path, weights_only=True)  # tensors only: no pickled code
        if len(ws) == len(ss) == len(gen_golden_lenet.LAYERS):
            return ws, ss
    except Exception:  # missing, truncated or foreign: rebuild it
        pass
    ws, ss = gen_golden_lenet_epoch.network(fseed)
    try:
        os.makedirs(d, exist_ok=True)
        tmp = "%%s.%%d.tmp" %% (path, os.getpid())
        torch.save(([w.detach().clone() for w in ws], [s.detach().clone() for s in ss]), tmp)
        os.replace(tmp, path)
    except OSError as err:
        print("# ref_aligned: network not cached (%%s)" %% err, file=sys.stderr)
    return ws, ss


def _frl_schedule(path):
    """Each round's clients: JSON lines with "selected" (a --per-round-log),
    or lines of ids (a frl-sim --schedule file; '#' comments)."""
    rounds = []
    for line in open(path):
        line = line.split("#")[0].strip()
        if line.startswith("{"):
            rounds.append(json.loads(line)["selected"])
        elif line:
            rounds.append([int(t) for t in line.replace(",", " ").split()])
    return rounds


def _frl_ranking(path, n_edges, fseed):
    """A frl-sim ranking file (sim/frl_sim_ranking_file.h) made on the network
    of fseed: per layer, the edge indices in ascending order of score."""
    raw = open(path, "rb").read()
    if raw[:8] != b"FRLRANK1" or len(raw) < 76:
        sys.exit("--init_ranking %%s: not a ranking file" %% path)
    if raw[40:72] != fseed:
        sys.exit("--init_ranking %%s: made on the network of another seed" %% path)
    nl = struct.unpack_from("<I", raw, 72)[0]
    lens = struct.unpack_from("<%%dI" %% nl, raw, 76)
    if list(lens) != list(n_edges.values()):
        sys.exit("--init_ranking %%s: layers %%s, the model has %%s" %% (path, lens, list(n_edges.values())))
    flat = np.frombuffer(raw, dtype="<u4", offset=76 + 4 * nl).astype(np.int64)
    if flat.size != sum(lens):
        sys.exit("--init_ranking %%s: %%d edges, %%d expected" %% (path, flat.size, sum(lens)))
    out, off = {}, 0
    for name, n in n_edges.items():
        order = torch.from_numpy(flat[off:off + n].copy())
        if not torch.equal(torch.sort(order).values, torch.arange(n)):
            sys.exit("--init_ranking %%s: layer %%s is not a permutation" %% (path, name))
        out[name] = order
        off += n
    return out


def _frl_measures(e, n_edges, uploads, nb, global_scores, sorted_init, keep_by_pos, positions_of, vote_layer):
    tot = sum(n_edges.values())
    prev = {k: positions_of(torch.argsort(global_scores[k], stable=True)) for k in n_edges}
    agree = 0.0
    for i in range(nb):
        w = 0.0
        for k, n in n_edges.items():
            d = (positions_of(uploads[k][i]) - prev[k]).double()
            w += n * (1.0 - 6.0 * float((d * d).sum()) / (n * (n * n - 1.0)))
        agree += w / tot
    churn = flips = 0
    honest = {} if 0 < nb < len(uploads[next(iter(n_edges))]) else None  # attackers and honest clients
    for k in n_edges:
        keep = keep_by_pos[k]
        pa = positions_of(torch.argsort(vote_layer(uploads[k], sorted_init[k]), stable=True))
        churn += int((keep[pa] != keep[prev[k]]).sum())
        if honest is not None:
            honest[k] = vote_layer(uploads[k][:nb], sorted_init[k])
            pb = positions_of(torch.argsort(honest[k], stable=True))
            flips += int((keep[pa] != keep[pb]).sum())
    print("# measures", e, json.dumps({"agree_benign": agree / max(1, nb), "mask_churn": churn / tot,
                                        "attack_flips": flips / tot}), flush=True)
    return honest  # the honest clients' plain vote (None without attackers): evaluated after the round

''' % HERE


def main():
    try:
        src = open(REF).read()
    except OSError as err:
        sys.exit("ref_aligned: cannot read the reference %s (%s); set FRL_REF_SCRIPT" % (REF, err))
    for name, old, new in PATCHES:
        if src.count(old) != 1:
            sys.exit("ref_aligned: patch '%s' does not apply to %s" % (name, REF))
        src = src.replace(old, new)
    marker = "def main():"
    if src.count(marker) != 1:
        sys.exit("ref_aligned: patch 'measures' does not apply to %s" % REF)
    src = src.replace(marker, MEASURES + marker)
    sys.argv[0] = REF
    exec(compile(src, REF, "exec"), {"__name__": "__main__", "__file__": REF})


if __name__ == "__main__":
    main()
