#!/usr/bin/python3
"""xLSTM-Large forward in PyTorch, written from the equations (../shared/hf/FORMAT.md §4), for
the side-by-side prefill timing of bench/xlstm_large_bench.cpp (issue 4 targets).

Reads a Hugging Face `xlstm` directory (config.json + model.safetensors; the safetensors header
is parsed with json, the data with numpy: no safetensors package) in float32 and computes
    x = E[ids]; per block: x += W_out(sigmoid(W_o u) * MHLayerNorm(mLSTM(q, k, v, i, f))),
    u = RMSNorm(x); x += W_down(SiLU(W_gate u2) * (W_up u2)), u2 = RMSNorm(x);
    logits = cap(W_head RMSNorm_out(x); output_logit_soft_cap)
with q = W_q u, k = W_k u, v = W_v u, i = cap(W_i u + b_i), f = cap(W_f u + b_f) and the mLSTM
cell in chunkwise form (chunk_size from config.json, any sequence length: the last chunk may be
shorter), stabilised as in FORMAT.md §4.5 (m starts at 0, q scaled by DQK^-1/2, eps after the
max). The head is the embedding when lm_head.weight is absent.

Prints `RESULT key=value ...` lines:
  RESULT torch_prefill threads=T seq=S s_median=... s_best=...   (B = 1, S random tokens, no_grad,
      one warm-up then --reps timed forwards, all logits computed as in ours)
  RESULT torch_check max_abs_prefill=... max_abs_decode=... max_abs_logit=... f64_max_abs_prefill=...
      (--check FILE: the input_ids / logits / step_logits written by
       `xlstm_large_bench --phase logits`; compared with this forward in float32, and the float32
       logits of ours with this forward in float64)

Usage: torch_xlstm_large.py --model DIR [--seq 2048] [--reps 3] [--threads 1] [--check FILE]
Use Debian's /usr/bin/python3 (python3-torch 1.13).
"""
import argparse
import json
import os
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """name -> float32 numpy array (F32 / BF16 / F16 / I64 converted or kept), metadata."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (n,) = struct.unpack("<Q", raw[:8].tobytes())
    header = json.loads(raw[8:8 + n].tobytes())
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = raw[base + b: base + end]
        dt = e["dtype"]
        if dt == "F32":
            a = buf.view(np.float32)
        elif dt == "BF16":
            a = (buf.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt == "F16":
            a = buf.view(np.float16).astype(np.float32)
        elif dt == "I64":
            a = buf.view(np.int64)
        else:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dt}")
        out[name] = np.array(a).reshape(e["shape"])  # copy: owned, writable
    return out, meta


class Config:
    def __init__(self, j):
        self.H = j.get("embedding_dim") or j.get("hidden_size", 4096)
        self.L = j.get("num_blocks") or j.get("num_hidden_layers", 32)
        self.NH = j.get("num_heads", 8)
        self.V = j.get("vocab_size", 50304)
        self.QK = int(self.H * j.get("qk_dim_factor", 0.5))
        self.VD = int(self.H * j.get("v_dim_factor", 1.0))
        self.norm_eps = j.get("norm_eps", 1e-6)
        self.eps = j.get("eps", 1e-6)
        self.chunk = j.get("chunk_size", 64)
        self.gate_cap = j.get("gate_soft_cap", 15.0)
        self.logit_cap = j.get("output_logit_soft_cap", 30.0)


def load_model(d, dtype):
    with open(os.path.join(d, "config.json")) as f:
        cfg = Config(json.load(f))
    w, _ = read_safetensors(os.path.join(d, "model.safetensors"))
    p = {k: torch.from_numpy(v).to(dtype) for k, v in w.items()}
    if "lm_head.weight" not in p:
        p["lm_head.weight"] = p["backbone.embeddings.weight"]  # tied
    return cfg, p


def cap(z, c):
    return c * torch.tanh(z / c) if c else z


def rmsnorm(x, w, b, eps):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w
    return y + b if b is not None else y


def mlstm_chunkwise(q, k, v, i, f, L, eps):
    """q, k (B,NH,S,DQK), v (B,NH,S,DV), i, f (B,NH,S) capped pre-activations -> h (B,NH,S,DV).
    Zero initial state (C, n, m = 0). Chunks of L tokens, the last one possibly shorter."""
    B, NH, S, DQK = q.shape
    DV = v.shape[-1]
    q = q * DQK ** -0.5
    lf = F.logsigmoid(f)
    C = q.new_zeros(B, NH, DQK, DV)
    n = q.new_zeros(B, NH, DQK)
    m = q.new_zeros(B, NH)
    hs = []
    for s0 in range(0, S, L):
        s1 = min(S, s0 + L)
        Lc = s1 - s0
        qc, kc, vc, ic = q[:, :, s0:s1], k[:, :, s0:s1], v[:, :, s0:s1], i[:, :, s0:s1]
        b = lf[:, :, s0:s1].cumsum(-1)                         # (B,NH,Lc) within-chunk sums
        logD = b[..., :, None] - b[..., None, :] + ic[..., None, :]
        mask = torch.ones(Lc, Lc, dtype=torch.bool).tril()
        logD = logD.masked_fill(~mask, -float("inf"))
        m_inter = b + m[..., None]                             # b_t + m0
        mt = torch.maximum(logD.max(-1).values, m_inter)       # m_t
        Sm = (qc @ kc.transpose(-1, -2)) * torch.exp(logD - mt[..., None])
        sc = torch.exp(m_inter - mt)                           # e^{b_t + m0 - m_t}
        num = sc[..., None] * (qc @ C) + Sm @ vc
        den = sc * (qc @ n[..., None]).squeeze(-1) + Sm.sum(-1)
        hs.append(num / (torch.maximum(den.abs(), torch.exp(-mt)) + eps)[..., None])
        g = b[..., -1]                                         # (B,NH)
        a = g[..., None] - b + ic                              # a_s = g - b_s + i_s
        m_new = torch.maximum(g + m, a.max(-1).values)
        wgt = torch.exp(a - m_new[..., None])
        decay = torch.exp(g + m - m_new)
        kw = kc * wgt[..., None]
        C = decay[..., None, None] * C + kw.transpose(-1, -2) @ vc
        n = decay[..., None] * n + kw.sum(-2)
        m = m_new
    return torch.cat(hs, dim=2)


def forward(cfg, p, ids, last=False):
    """ids (B,S) int64 -> soft-capped logits (B,S,V), or (B,1,V) of the last position (last)."""
    B, S = ids.shape
    NH, DQK, DV = cfg.NH, cfg.QK // cfg.NH, cfg.VD // cfg.NH
    g = p.get
    x = p["backbone.embeddings.weight"][ids]
    for l in range(cfg.L):
        pre = f"backbone.blocks.{l}."
        P = lambda name: g(pre + name)
        u = rmsnorm(x, P("norm_mlstm.weight"), P("norm_mlstm.bias"), cfg.norm_eps)
        q = F.linear(u, P("mlstm_layer.q.weight"), P("mlstm_layer.q.bias"))
        k = F.linear(u, P("mlstm_layer.k.weight"), P("mlstm_layer.k.bias"))
        v = F.linear(u, P("mlstm_layer.v.weight"), P("mlstm_layer.v.bias"))
        o = F.linear(u, P("mlstm_layer.ogate_preact.weight"), P("mlstm_layer.ogate_preact.bias"))
        i = cap(F.linear(u, P("mlstm_layer.igate_preact.weight"), P("mlstm_layer.igate_preact.bias")),
                cfg.gate_cap)
        f = cap(F.linear(u, P("mlstm_layer.fgate_preact.weight"), P("mlstm_layer.fgate_preact.bias")),
                cfg.gate_cap)
        heads = lambda t, d: t.view(B, S, NH, d).transpose(1, 2)
        h = mlstm_chunkwise(heads(q, DQK), heads(k, DQK), heads(v, DV), i.transpose(1, 2),
                            f.transpose(1, 2), cfg.chunk, cfg.eps)
        h = h.transpose(1, 2)                                  # (B,S,NH,DV)
        mu = h.mean(-1, keepdim=True)
        var = (h - mu).pow(2).mean(-1, keepdim=True)           # biased
        hn = ((h - mu) * torch.rsqrt(var + cfg.norm_eps)).reshape(B, S, cfg.VD)
        hn = hn * P("mlstm_layer.multihead_norm.weight")
        if P("mlstm_layer.multihead_norm.bias") is not None:
            hn = hn + P("mlstm_layer.multihead_norm.bias")
        x = x + F.linear(torch.sigmoid(o) * hn, P("mlstm_layer.out_proj.weight"),
                         P("mlstm_layer.out_proj.bias"))
        u2 = rmsnorm(x, P("norm_ffn.weight"), P("norm_ffn.bias"), cfg.norm_eps)
        z = F.silu(F.linear(u2, P("ffn.proj_up_gate.weight"), P("ffn.proj_up_gate.bias"))) * \
            F.linear(u2, P("ffn.proj_up.weight"), P("ffn.proj_up.bias"))
        x = x + F.linear(z, P("ffn.proj_down.weight"), P("ffn.proj_down.bias"))
    if last:
        x = x[:, -1:]
    if "backbone.out_norm.weight" in p:
        x = rmsnorm(x, p["backbone.out_norm.weight"], None, cfg.norm_eps)
    return cap(F.linear(x, p["lm_head.weight"]), cfg.logit_cap)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF xlstm directory (F32 weights)")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check", help="ours_logits.safetensors from xlstm_large_bench --phase logits")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, p = load_model(a.model, torch.float32)
    with torch.no_grad():
        if a.check:
            ref, meta = read_safetensors(a.check)
            ids = torch.from_numpy(ref["input_ids"])
            P0 = int(meta.get("prefill_len", 0))
            ours = torch.from_numpy(ref["logits"])
            steps = torch.from_numpy(ref["step_logits"])
            lt = forward(cfg, p, ids)
            cfg64, p64 = load_model(a.model, torch.float64)
            l64 = forward(cfg64, p64, ids)
            del p64
            print(f"RESULT torch_check max_abs_prefill={(lt - ours).abs().max().item():.3e} "
                  f"max_abs_decode={(lt[:, P0:] - steps).abs().max().item():.3e} "
                  f"max_abs_logit={lt.abs().max().item():.2f} "
                  f"f64_max_abs_prefill={(l64 - ours.double()).abs().max().item():.3e} "
                  f"f64_max_abs_decode={(l64[:, P0:] - steps.double()).abs().max().item():.3e} "
                  f"torch_f32_vs_f64={(l64 - lt.double()).abs().max().item():.3e}", flush=True)
        g = torch.Generator().manual_seed(2)
        ids = torch.randint(0, cfg.V, (1, a.seq), generator=g)
        forward(cfg, p, ids)  # warm-up
        ts, tl = [], []
        for _ in range(a.reps):  # all positions' logits, then the last position's only
            t0 = time.perf_counter()
            out = forward(cfg, p, ids)
            ts.append(time.perf_counter() - t0)
            del out
            t0 = time.perf_counter()
            out = forward(cfg, p, ids, last=True)
            tl.append(time.perf_counter() - t0)
            del out
        print(f"RESULT torch_prefill threads={a.threads} seq={a.seq} "
              f"s_median={statistics.median(ts):.4f} s_best={min(ts):.4f} "
              f"s_last_median={statistics.median(tl):.4f} s_last_best={min(tl):.4f}", flush=True)


if __name__ == "__main__":
    main()
