#!/usr/bin/python3
"""Golden vectors for frl's integer-only kernels (tests/quant/test_qgolden.c).

Independent of the C code: PyTorch does the convolutions (OIHW weights,
cross-correlation, NCHW, zero padding) in float64, which is exact for these
integer magnitudes, and Python integers do the requantisation

    y = clamp((acc * M0 + 2^(s-1)) >> s, 0, 255)      (s = 0: clamp(acc * M0))

(arithmetic shift = floor), i.e. single rounding with ties toward +inf.
The first conv sees q = p - zin with zero padding in that centred domain.
Max-pool runs on the int32 accumulators before requantisation.

Output: tests/data/golden/quant_golden.bin, a sequence of little-endian
records  u32 kind | u32 nparams | i32 params[nparams] | payload (per kind,
see test_qgolden.c), ended by kind 0.

  /usr/bin/python3 tools/gen_quant_golden.py [--out tests/data/golden/quant_golden.bin]
"""
import argparse
import os
import struct

import torch
import torch.nn.functional as F

KIND_END, KIND_FIRST, KIND_CONV, KIND_DENSE, KIND_REQUANT = 0, 1, 2, 3, 4


def requant(acc, m0, s):
    p = int(acc) * m0
    y = p if s == 0 else (p + (1 << (s - 1))) >> s
    return max(0, min(255, y))


def rq_tensor(acc, m0, s):
    flat = [requant(v, m0, s) for v in acc.flatten().tolist()]
    return torch.tensor(flat, dtype=torch.int64).reshape(acc.shape)


def pick_rq(acc, g):
    """A dyadic multiplier mapping the largest positive accumulator to ~255."""
    amax = max(1, int(acc.max().item()))
    s = 31
    while amax > 255 and s < 62:
        amax >>= 1
        s += 1
    m0 = (1 << 30) + int(torch.randint(0, 1 << 30, (1,), generator=g).item())
    return m0, s


def ternary(shape, g):
    r = torch.randint(0, 4, shape, generator=g)
    return torch.where(r == 0, 1, torch.where(r == 1, -1, 0)).to(torch.int64)


def u8(t):
    return bytes(t.to(torch.uint8).flatten().tolist())


def i8(t):
    return struct.pack(f"<{t.numel()}b", *t.flatten().tolist())


def i32(t):
    return struct.pack(f"<{t.numel()}i", *t.flatten().tolist())


def record(kind, params, payload):
    return struct.pack(f"<II{len(params)}i", kind, len(params), *params) + payload


def case_first(g, H, W, OC, zin):
    img = torch.randint(0, 256, (H, W), generator=g)
    w = ternary((OC, 1, 3, 3), g)
    q = (img - zin).double().reshape(1, 1, H, W)
    acc = F.conv2d(q, w.double(), padding=1).round().long()[0].permute(1, 2, 0)  # HWC
    m0, s = pick_rq(acc, g)
    out = rq_tensor(acc, m0, s)
    return record(KIND_FIRST, [H, W, OC, zin, m0, s], u8(img) + i8(w) + i32(acc) + u8(out))


def case_conv(g, H, W, C, OC, pad, pool, sparse):
    x = torch.randint(0, 256, (H, W, C), generator=g)
    if sparse:
        x = torch.where(torch.randint(0, 4, (H, W, C), generator=g) == 0, x, torch.zeros_like(x))
    w = ternary((OC, C, 3, 3), g)
    a = F.conv2d(x.permute(2, 0, 1).double().unsqueeze(0), w.double(), padding=pad)
    if pool > 1:
        a = F.max_pool2d(a, pool)
    acc = a.round().long()[0].permute(1, 2, 0)
    m0, s = pick_rq(acc, g)
    out = rq_tensor(acc, m0, s)
    return record(KIND_CONV, [H, W, C, OC, pad, pool, m0, s], u8(x) + i8(w) + i32(acc) + u8(out))


def case_dense(g, B, K, O):
    x = torch.randint(0, 256, (B, K), generator=g)
    w = ternary((O, K), g)
    acc = (x.double() @ w.double().t()).round().long()
    m0, s = pick_rq(acc, g)
    out = rq_tensor(acc, m0, s)
    return record(KIND_DENSE, [B, K, O, m0, s], u8(x) + i8(w) + i32(acc) + u8(out))


def case_requant(g, n):
    rows = []
    special = [(1, 1, 1), (3, 1, 1), (5, 1, 1), (-1, 1, 1), (2, 3, 2), (340, 3, 2), (339, 3, 2),
               (2**31 - 1, 2**31 - 1, 62), (-2**31, 2**31 - 1, 62), (-2**31, 2**31 - 1, 0),
               (2**31 - 1, 2**31 - 1, 0), (256, 1, 0), (255, 1, 0), (12345, 0, 9)]
    for acc, m0, s in special:
        rows.append((acc, m0, s, requant(acc, m0, s)))
    while len(rows) < n:
        acc = int(torch.randint(-2**31, 2**31, (1,), generator=g).item()) >> int(torch.randint(0, 31, (1,), generator=g).item())
        m0 = int(torch.randint(0, 2**31, (1,), generator=g).item())
        s = int(torch.randint(0, 63, (1,), generator=g).item())
        rows.append((acc, m0, s, requant(acc, m0, s)))
    flat = [v for r in rows for v in r]
    return record(KIND_REQUANT, [len(rows)], struct.pack(f"<{len(flat)}i", *flat))


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "golden", "quant_golden.bin"))
    args = ap.parse_args()
    g = torch.Generator().manual_seed(20261122)
    blob = b""
    blob += case_first(g, 8, 8, 16, 73)
    blob += case_first(g, 7, 5, 32, 0)
    blob += case_first(g, 6, 6, 16, 255)
    blob += case_conv(g, 8, 8, 8, 32, 1, 2, True)
    blob += case_conv(g, 6, 10, 12, 16, 1, 2, False)
    blob += case_conv(g, 5, 7, 4, 8, 1, 1, False)
    blob += case_conv(g, 7, 7, 3, 8, 0, 1, True)
    blob += case_dense(g, 3, 50, 7)
    blob += case_dense(g, 2, 1000, 20)
    blob += case_requant(g, 500)
    blob += struct.pack("<II", KIND_END, 0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(blob)
    print(f"wrote {args.out}: {len(blob)} bytes")


if __name__ == "__main__":
    main()
