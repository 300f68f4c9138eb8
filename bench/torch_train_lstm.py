#!/usr/bin/python3
"""The PyTorch CPU reference for training throughput: a char-level LSTM language model
(embedding 128, one LSTM layer of 512, linear head; 1.36M parameters on Tiny Shakespeare),
batch 32 x 128 characters, AdamW lr 2e-3, gradient clipping 1.0 -- the same model and
settings as `xlstm train --model lstm-small`. Prints JSON: tokens/s over the timed steps.
Usage: torch_train_lstm.py DATA [--steps N] [--threads T]
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    text = open(args.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(len(data) * 0.9)
    train = data[:n]
    V, E, H, B, T = len(chars), 128, 512, args.batch, args.context

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, batch_first=True)
            self.head = torch.nn.Linear(H, V)

        def forward(self, x):
            return self.head(self.lstm(self.emb(x))[0])

    model = LM()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)

    def step():
        ix = torch.randint(len(train) - T - 1, (B,), generator=g)
        x = torch.stack([train[i:i + T] for i in ix])
        y = torch.stack([train[i + 1:i + T + 1] for i in ix])
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(3):
        step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "threads": args.threads, "params": params,
                      "steps": args.steps, "seconds": dt, "tokens_per_s": args.steps * B * T / dt,
                      "loss": loss}))


if __name__ == "__main__":
    main()
