#!/usr/bin/python3
"""PyTorch CPU timings of the configurations in bench/*_bench.cpp, for side-by-side ratios.

Runs torch.nn.LSTM, and eager PyTorch loops of the sLSTM and mLSTM equations (the official
vanilla / native formulations), forward and forward+backward, and prints one JSON object per
line: {"name": ..., "threads": N, "ms": median milliseconds}. Use Debian's /usr/bin/python3
(python3-torch). Usage: torch_ref.py [--threads 1,2] [--filter SUBSTR] [--reps 3]
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

CONFIGS = [(64, 256, 512), (16, 512, 1024)]          # (B, T, D) shared by the three cells
LSTM_CONFIGS = [(32, 128, 128, 256), (64, 256, 512, 512), (16, 512, 1024, 1024)]  # (B,T,I,H)


def timeit(fn, reps):
    fn()  # warm-up (allocations, thread pool)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def lstm_cases():
    for (B, T, I, H) in LSTM_CONFIGS:
        def make(B=B, T=T, I=I, H=H):
            m = torch.nn.LSTM(I, H, batch_first=True)
            x = torch.randn(B, T, I, requires_grad=True)
            def fwd():
                with torch.no_grad():
                    m(x)
            def fwdbwd():
                y, _ = m(x)
                y.sum().backward()
            return fwd, fwdbwd
        yield f"lstm/B{B}_T{T}_I{I}_H{H}", make
    def step():
        m = torch.nn.LSTM(1024, 1024, batch_first=True)
        x = torch.randn(1, 1, 1024)
        h = (torch.zeros(1, 1, 1024), torch.zeros(1, 1, 1024))
        def fwd():
            with torch.no_grad():
                m(x, h)
        return fwd, None
    yield "lstm_step/B1_H1024", step


def slstm_seq(x, R, b, NH):
    """Eager loop of the vanilla sLSTM equations. x: (T, B, 4H) gate pre-activations."""
    T, B, G = x.shape
    H = G // 4
    DH = H // NH
    y = x.new_zeros(B, H); c = x.new_zeros(B, H); n = x.new_zeros(B, H); m = x.new_zeros(B, H)
    ys = []
    # unbind, not x[t]: autograd of an index builds a full (T, B, 4H) gradient per step (an
    # O(T^2) backward); unbind's backward stacks the T slices once.
    xs = x.unbind(0)
    for t in range(T):
        ry = torch.einsum("bhd,hdg->bhg", y.view(B, NH, DH), R).reshape(B, NH, 4, DH)
        ry = ry.permute(0, 2, 1, 3).reshape(B, 4 * H)
        raw = xs[t] + ry + b
        i, f, z, o = raw.split(H, dim=-1)
        logfm = m + F.logsigmoid(f)
        m_new = i if t == 0 else torch.maximum(i, logfm)
        ig = torch.exp(i - m_new); fg = torch.exp(logfm - m_new)
        c = fg * c + ig * torch.tanh(z); n = fg * n + ig; m = m_new
        y = torch.sigmoid(o) * c / n
        ys.append(y)
    return torch.stack(ys)


def slstm_cases():
    for (B, T, D) in CONFIGS + [(16, 256, 512)]:
        NH = 4
        def make(B=B, T=T, D=D, NH=NH):
            x = torch.randn(T, B, 4 * D, requires_grad=True)
            R = (torch.randn(NH, D // NH, 4 * (D // NH)) / math.sqrt(D // NH)).requires_grad_()
            b = torch.zeros(4 * D, requires_grad=True)
            def fwd():
                with torch.no_grad():
                    slstm_seq(x, R, b, NH)
            def fwdbwd():
                slstm_seq(x, R, b, NH).sum().backward()
            return fwd, fwdbwd
        yield f"slstm/B{B}_T{T}_H{D}_NH4", make


def mlstm_chunkwise(q, k, v, i, f, L=64, eps=1e-6):
    """Eager chunkwise mLSTM (mlstm_kernels native formulation, q-scaled)."""
    B, NH, S, DK = q.shape
    DV = v.shape[-1]
    NC = S // L
    q = q * DK ** -0.5
    qc = q.view(B, NH, NC, L, DK); kc = k.view(B, NH, NC, L, DK); vc = v.view(B, NH, NC, L, DV)
    lf = F.logsigmoid(f).view(B, NH, NC, L)
    ic = i.view(B, NH, NC, L)
    b = lf.cumsum(-1)
    g = b[..., -1]
    a = g.unsqueeze(-1) - b + ic
    C = q.new_zeros(B, NH, DK, DV); n = q.new_zeros(B, NH, DK); m = q.new_zeros(B, NH)
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool))
    hs = []
    for kk in range(NC):
        logD = b[:, :, kk, :, None] - b[:, :, kk, None, :] + ic[:, :, kk, None, :]
        logD = logD.masked_fill(~mask, -float("inf"))
        m_intra = logD.max(-1).values
        m_inter = b[:, :, kk] + m.unsqueeze(-1)
        mi = torch.maximum(m_intra, m_inter)
        Sm = (qc[:, :, kk] @ kc[:, :, kk].transpose(-1, -2)) * torch.exp(logD - mi.unsqueeze(-1))
        sc = torch.exp(m_inter - mi).unsqueeze(-1)
        num = sc * (qc[:, :, kk] @ C) + Sm @ vc[:, :, kk]
        den = sc.squeeze(-1) * (qc[:, :, kk] @ n.unsqueeze(-1)).squeeze(-1) + Sm.sum(-1)
        hs.append(num / (torch.maximum(den.abs(), torch.exp(-mi)) + eps).unsqueeze(-1))
        m_new = torch.maximum(g[:, :, kk] + m, a[:, :, kk].max(-1).values)
        w = torch.exp(a[:, :, kk] - m_new.unsqueeze(-1))
        decay = torch.exp(g[:, :, kk] + m - m_new)
        C = decay[..., None, None] * C + (kc[:, :, kk] * w.unsqueeze(-1)).transpose(-1, -2) @ vc[:, :, kk]
        n = decay.unsqueeze(-1) * n + (kc[:, :, kk] * w.unsqueeze(-1)).sum(-2)
        m = m_new
    return torch.cat(hs, dim=2)


def mlstm_cases():
    for (B, T, D) in CONFIGS:
        NH = 4
        def make(B=B, T=T, D=D, NH=NH):
            DH = D // NH
            q = torch.randn(B, NH, T, DH, requires_grad=True)
            k = torch.randn(B, NH, T, DH, requires_grad=True)
            v = torch.randn(B, NH, T, DH, requires_grad=True)
            i = torch.randn(B, NH, T, requires_grad=True)
            f = (torch.randn(B, NH, T) + 3).requires_grad_()
            def fwd():
                with torch.no_grad():
                    mlstm_chunkwise(q, k, v, i, f)
            def fwdbwd():
                mlstm_chunkwise(q, k, v, i, f).sum().backward()
            return fwd, fwdbwd
        yield f"mlstm_chunkwise/B{B}_T{T}_D{D}_NH4", make


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--filter", default="")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    for th in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(th)
        for gen in (lstm_cases, slstm_cases, mlstm_cases):
            for name, make in gen():
                if args.filter not in name:
                    continue
                fwd, fwdbwd = make()
                print(json.dumps({"name": name + "/fwd", "threads": th, "ms": timeit(fwd, args.reps)}), flush=True)
                if fwdbwd is not None:
                    print(json.dumps({"name": name + "/fwdbwd", "threads": th, "ms": timeit(fwdbwd, args.reps)}), flush=True)


if __name__ == "__main__":
    main()
