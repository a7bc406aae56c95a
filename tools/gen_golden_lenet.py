#!/usr/bin/env python3
"""Makes tests/data/golden/lenet_step.txt: one forward/backward step of the
reference LeNet (PyTorch, the modules of ../shared/anchors/frl_torch_ref.py:
signed-constant weights, top-50% |score| mask with ties by index, straight-
through gradient) on the first 4 Fashion-MNIST test images.

The network comes from frl's seed with an independent pure-Python ChaCha20
(RFC 8439), following the documented derivation in supermask/frl_model.h, so
the golden file also pins the weights and initial scores bit for bit.

Run: /usr/bin/python3 tools/gen_golden_lenet.py  (needs python3-torch)
"""
import gzip
import hashlib
import math
import os
import random
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def rotl(v, c):
    return ((v << c) & 0xffffffff) | (v >> (32 - c))


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 7)


def chacha_words(key, nonce, nwords):
    """First nwords little-endian u32 of the ChaCha20 (IETF) keystream."""
    k = struct.unpack("<8I", key)
    n = struct.unpack("<3I", nonce)
    out = []
    block = 0
    while len(out) < nwords:
        init = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, *k, block, *n]
        s = list(init)
        for _ in range(10):
            quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
            quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
        out.extend((s[i] + init[i]) & 0xffffffff for i in range(16))
        block += 1
    return out[:nwords]


def stream(seed, purpose, a, b, nwords):
    return chacha_words(seed, struct.pack("<3I", purpose, a, b), nwords)


STREAM_WEIGHTS, STREAM_SCORES = 1, 2
LAYERS = [("c1", (32, 1, 3, 3)), ("c2", (64, 32, 3, 3)), ("f1", (128, 12544)), ("f2", (10, 128))]


def network(seed):
    """frl's lenet for a 32-byte seed (supermask/frl_model.h): signed-constant
    weights and initial scores (requiring grad) as torch tensors."""
    weights, scores = [], []
    for l, (name, shape) in enumerate(LAYERS):
        n = int(np.prod(shape))
        fan = n // shape[0]
        words = np.array(stream(seed, STREAM_WEIGHTS, l, 0, (n + 31) // 32), dtype=np.uint64)
        e = np.arange(n)
        bits = (words[e >> 5] >> (e & 31).astype(np.uint64)) & np.uint64(1)
        c = np.float32(math.sqrt(2.0) / math.sqrt(fan))
        weights.append(torch.from_numpy(np.where(bits == 1, c, -c).astype(np.float32).reshape(shape)))
        u = np.array(stream(seed, STREAM_SCORES, l, 0, n), dtype=np.uint64) >> np.uint64(8)
        uf = u.astype(np.float64) * 2.0 ** -24          # exact: 24-bit integers
        bound = 1.0 / math.sqrt(fan)
        s = ((2.0 * uf - 1.0) * bound).astype(np.float32)  # one rounding to float32
        scores.append(torch.from_numpy(s.reshape(shape)).requires_grad_(True))
        print(f"layer {name}: n={n} c={float(c):.9g}", file=sys.stderr)
    return weights, scores


def masked(w, s):
    """w * mask(top 50% of |s|, ties by index), straight-through: d mask / d |s| := 1."""
    flat = s.abs().reshape(-1)
    n = flat.numel()
    j = int((1 - 0.5) * n)
    order = torch.argsort(flat.detach(), stable=True)
    m = torch.ones_like(flat)
    m[order[:j]] = 0.0
    m = m.view_as(s)
    return w * (m.detach() + s.abs() - s.abs().detach())


def forward(weights, scores, x):
    """The reference's LeNet on a (B, 1, 28, 28) batch: logits."""
    B = x.shape[0]
    h = F.relu(F.conv2d(x, masked(weights[0], scores[0]), None, 1, 1))
    h = F.relu(F.conv2d(h, masked(weights[1], scores[1]), None, 1, 1))
    h = F.max_pool2d(h, 2).reshape(B, 12544)
    h = F.relu(F.linear(h, masked(weights[2], scores[2])))
    return F.linear(h, masked(weights[3], scores[3]))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = os.path.join(root, "tests", "data", "golden", "lenet_step.txt")
    seed = hashlib.blake2b(b"frl seed v1" + struct.pack("<Q", 0), digest_size=32).digest()
    weights, scores = network(seed)

    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        raw = f.read()
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
        lab = f.read()
    B = 4
    sections = [("real", np.frombuffer(raw, dtype=np.uint8, offset=16, count=B * 784).astype(np.float32),
                 np.frombuffer(lab, dtype=np.uint8, offset=8, count=B).astype(np.int64))]
    # Synthetic images without flat regions (so no max-pool window holds
    # equal values): pixel i of image b = (b*7919 + i*104729 + (i*i) % 251) % 256,
    # labels 3, 1, 4, 1. tests/supermask/test_golden.c builds the same.
    syn = np.array([(b * 7919 + i * 104729 + (i * i) % 251) % 256 for b in range(B) for i in range(784)],
                   dtype=np.float32)
    sections.append(("synthetic", syn, np.array([3, 1, 4, 1], dtype=np.int64)))
    out = open(out_path, "w")
    out.write("# frl golden: lenet, seed frl_seed_from_u64(0), keep 0.5 abs; sections: first 4 t10k images, synthetic\n")
    out.write("# made by tools/gen_golden_lenet.py with torch %s\n" % torch.__version__)
    for sec, pix, yv in sections:
        step(sec, pix, yv, weights, scores, out, B)
    out.close()
    print("wrote", out_path, file=sys.stderr)


def step(sec, pix, yv, weights, scores, f, B):
    for s_ in scores:
        s_.grad = None
    a = np.float32(1.0) / (np.float32(255.0) * np.float32(0.3530))
    b = -np.float32(0.2860) / np.float32(0.3530)
    x = torch.from_numpy((pix * a + b).astype(np.float32).reshape(B, 1, 28, 28))
    y = torch.from_numpy(yv)

    logits = forward(weights, scores, x)
    loss = F.cross_entropy(logits, y)
    loss.backward()

    rnd = random.Random(0)
    if True:
        f.write("section %s\n" % sec)
        f.write("loss %.9g\n" % loss.item())
        for i in range(B):
            f.write("logits %d %s\n" % (i, " ".join("%.9g" % v for v in logits[i].tolist())))
        for l, (name, shape) in enumerate(LAYERS):
            n = int(np.prod(shape))
            g = scores[l].grad.reshape(-1).double()
            w = weights[l].reshape(-1)
            s = scores[l].detach().reshape(-1)
            f.write("layer %d %d %.9g %.9g\n" % (l, n, g.abs().sum().item(), g.abs().max().item()))
            for e in range(8 if sec == "real" else 0):  # pinned initial values: sign and exact score bits
                f.write("init %d %d %d %08x\n" % (l, e, 1 if w[e] > 0 else 0,
                                                  struct.unpack("<I", struct.pack("<f", s[e].item()))[0]))
            for e in sorted(set(list(range(8)) + [rnd.randrange(n) for _ in range(24)])):
                f.write("grad %d %d %.9g\n" % (l, e, g[e].item()))


if __name__ == "__main__":
    main()
