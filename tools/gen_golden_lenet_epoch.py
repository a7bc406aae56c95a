#!/usr/bin/env python3
"""Makes tests/data/golden/lenet_epoch.txt: one local epoch of the reference's
training (PyTorch SGD, lr 0.4, momentum 0.9, weight decay 1e-4 on the scores,
batch 8; the modules of tools/gen_golden_lenet.py) on the first 200
Fashion-MNIST training images, from frl's seed-0 network and in the order
frl's trainer visits them (frl_rng stream purpose 99, a = b = 0: Fisher-Yates
from the top with Lemire's bounded draw, as common/rng.c).

After 25 steps single scores have parted (the mask is discrete and real
images hold pooling ties, see tests/supermask/test_golden.c), so the file
pins what a training bug would move: the epoch's mean loss and accuracy and
each layer's total score movement sum |s_end - s_start|.

Run: /usr/bin/python3 tools/gen_golden_lenet_epoch.py  (needs python3-torch;
about a minute: the pure-Python ChaCha20 of the network)
"""
import gzip
import hashlib
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden_lenet import LAYERS, chacha_words, forward, network  # noqa: E402

N = 200
PURPOSE = 99  # the frl_rng stream the test shuffles with: frl_rng_init(seed, 99, 0, 0)


class FrlRng:
    """common/rng.c: keystream words in order, Lemire's bounded draw."""

    def __init__(self, seed):
        self.words = chacha_words(seed, struct.pack("<3I", PURPOSE, 0, 0), 4096)
        self.i = 0

    def u32(self):
        v = self.words[self.i]
        self.i += 1
        return v

    def below(self, n):
        m = self.u32() * n
        if (m & 0xffffffff) < n:
            t = ((1 << 32) - n) % n
            while (m & 0xffffffff) < t:
                m = self.u32() * n
        return m >> 32


def main():
    torch.set_num_threads(1)
    seed = hashlib.blake2b(b"frl seed v1" + struct.pack("<Q", 0), digest_size=32).digest()
    weights, scores = network(seed)
    start = [s.detach().clone() for s in scores]
    rng = FrlRng(seed)
    order = list(range(N))
    for i in range(N, 1, -1):
        j = rng.below(i)
        order[i - 1], order[j] = order[j], order[i - 1]
    with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
        raw = f.read()
    with gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz") as f:
        lab = f.read()
    pix = np.frombuffer(raw, dtype=np.uint8, offset=16, count=N * 784).astype(np.float32)
    a = np.float32(1.0) / (np.float32(255.0) * np.float32(0.3530))
    b = -np.float32(0.2860) / np.float32(0.3530)
    xs = torch.from_numpy((pix * a + b).astype(np.float32).reshape(N, 1, 28, 28))
    ys = torch.from_numpy(np.frombuffer(lab, dtype=np.uint8, offset=8, count=N).astype(np.int64))
    opt = torch.optim.SGD(scores, lr=0.4, momentum=0.9, weight_decay=1e-4)
    loss_sum, correct = 0.0, 0
    for p in range(0, N, 8):
        bi = torch.tensor(order[p:p + 8])
        y, B = ys[bi], len(bi)
        out = forward(weights, scores, xs[bi])
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += loss.item() * B
        correct += int((out.argmax(1) == y).sum())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_path = os.path.join(root, "tests", "data", "golden", "lenet_epoch.txt")
    with open(out_path, "w") as f:
        f.write("# frl golden: one local epoch of lenet from seed frl_seed_from_u64(0), first %d train images, batch 8\n" % N)
        f.write("# made by tools/gen_golden_lenet_epoch.py with torch %s\n" % torch.__version__)
        f.write("images %d\n" % N)
        f.write("loss %.9g\n" % (loss_sum / N))
        f.write("accuracy %.9g\n" % (correct / N))
        for l in range(len(LAYERS)):
            move = float((scores[l].detach().double() - start[l].double()).abs().sum())
            f.write("move %d %.9g\n" % (l, move))
    print("wrote", out_path, file=sys.stderr)


if __name__ == "__main__":
    main()
