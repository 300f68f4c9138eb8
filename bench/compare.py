#!/usr/bin/env python3
"""Side-by-side table: our engines vs oneDNN's LSTM primitive vs PyTorch, per thread count.

Runs build-bench/bench/{lstm,slstm,mlstm}_bench with --benchmark_format=json (each once per
thread count, OMP_NUM_THREADS set for the process) and bench/torch_ref.py under Debian's
/usr/bin/python3 (torch 1.13), then prints ONE markdown table:

  config | pass | thr | ours ms | oneDNN ms | PyTorch ms | oneDNN/ours | PyTorch/ours |
  GFLOP | GFLOP/s | % peak | GEMM@peak ms | tokens/s

ours / oneDNN ms are medians of 3 Google Benchmark repetitions; PyTorch ms is the median of
--torch-reps timed runs after one warm-up run (default 1: torch_ref.py's eager backward passes
take seconds here). GFLOP counts GEMM work only (see each
*_bench.cpp); % peak divides our GFLOP/s by the median of the
`peak/sgemm_packed_1024` runs (a oneDNN matmul with packed weights, 1024^3) of the same thread
count; GEMM@peak ms = GFLOP / peak, the time of the matrix products alone at that ceiling.
Ratios > 1 mean ours is faster.

Usage: bench/compare.py [--build build-bench] [--threads 1,2] [--filter SUBSTR] [--quick]
                        [--no-torch | --torch-json FILE] [--torch-reps N]
                        [--torch-prefixes lstm/,lstm_step/,slstm/,mlstm_chunkwise/] [--save FILE]
                        [--gemm]
       bench/compare.py --merge RUN.json... [--threads 1,2] [--filter SUBSTR]
--save keeps every result (and the GEMM table) as JSON; --merge prints the table of saved runs,
each row from the run where it was fastest (on a shared machine other load only adds time).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ["lstm_bench", "slstm_bench", "mlstm_bench"]
TORCH_PY = "/usr/bin/python3"
SUFFIX = re.compile(r"^(min_time:|repeats:|real_time|iterations:|threads:|manual_time)")


def base_name(run_name):
    return "/".join(p for p in run_name.split("/") if not SUFFIX.match(p))


def env_for(threads, quick):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    if quick:
        env["XLSTM_BENCH_QUICK"] = "1"
    else:
        env.pop("XLSTM_BENCH_QUICK", None)
    return env


def run_gbench(path, threads, regex, quick, log, extra=()):
    """Returns {name: {"ms": median, "min": min, "GFLOP": .., "tokens": ..}}."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
        out = tf.name
    cmd = [path, "--benchmark_format=json", f"--benchmark_out={out}",
           "--benchmark_out_format=json"]
    if regex:
        cmd.append(f"--benchmark_filter={regex}")
    cmd += list(extra)
    t0 = time.time()
    subprocess.run(cmd, env=env_for(threads, quick), stdout=subprocess.DEVNULL, check=True)
    log(f"  {os.path.basename(path)} threads={threads}: {time.time() - t0:.0f} s")
    with open(out) as f:
        data = json.load(f)
    os.unlink(out)
    res = {}
    per_rep = {}
    for b in data["benchmarks"]:
        name = base_name(b.get("run_name", b["name"]))
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        ms = b["real_time"] * unit
        r = res.setdefault(name, {"GFLOP": b.get("GFLOP", 0.0), "tokens": b.get("tokens", 0.0)})
        if b.get("run_type") == "aggregate":
            agg = b.get("aggregate_name")
            if agg in ("median", "min"):
                r["ms" if agg == "median" else "min"] = ms
        else:
            per_rep.setdefault(name, []).append(ms)
    for name, r in res.items():  # without repetitions there are no aggregates
        reps = per_rep.get(name, [])
        if "ms" not in r and reps:
            r["ms"] = statistics.median(reps)
        if "min" not in r and reps:
            r["min"] = min(reps)
        r["reps"] = len(reps)
    return res, data.get("context", {})


def run_torch(threads, configs, reps, log):
    """torch_ref.py once per config name (its --filter is a substring of the config name)."""
    if not os.path.exists(TORCH_PY):
        log(f"  {TORCH_PY} not found: no PyTorch column")
        return {}
    res = {}
    t0 = time.time()
    for cfg in configs:
        cmd = [TORCH_PY, os.path.join(ROOT, "bench", "torch_ref.py"), "--threads", str(threads),
               "--reps", str(reps), "--filter", cfg]
        p = subprocess.run(cmd, env=env_for(threads, False), stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            log(f"  torch_ref.py --filter {cfg} failed (rc {p.returncode})")
        for line in p.stdout.splitlines():
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                continue
            if j["name"].rsplit("/", 1)[0] == cfg:
                res[j["name"]] = j["ms"]
    log(f"  torch_ref.py threads={threads}: {time.time() - t0:.0f} s")
    return res


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def table(results, torch, threads_list):
    """results[threads][name] -> dict; torch[threads][name] -> ms."""
    peaks = {}
    for th in threads_list:
        p = [r["GFLOP"] / r["ms"] * 1e3 for n, r in results[th].items()
             if n.startswith("peak/") and r.get("ms")]
        peaks[th] = statistics.median(p) if p else None
    lines = []
    for th in threads_list:
        lines.append(f"sgemm ceiling, {th} thread(s): "
                     f"{fmt(peaks[th], '.0f')} GFLOP/s (oneDNN matmul, packed weights, 1024^3)")
    lines.append("")
    head = ["config", "pass", "thr", "ours ms", "oneDNN ms", "PyTorch ms", "oneDNN/ours",
            "PyTorch/ours", "GFLOP", "GFLOP/s", "% peak", "GEMM@peak ms", "tokens/s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
    names = []
    for th in threads_list:
        for n in results[th]:
            if n.startswith(("peak/", "onednn/")) or n in names:
                continue
            names.append(n)
        for n in torch.get(th, {}):
            if n not in names:
                names.append(n)
    rows = []
    for n in names:
        config, pss = n.rsplit("/", 1)
        for th in threads_list:
            r = results[th].get(n)
            ours = r["ms"] if r else None
            o = results[th].get("onednn/" + n)
            dnn = o["ms"] if o else None
            tch = torch.get(th, {}).get(n)
            gflop = r["GFLOP"] if r else None
            rate = gflop / ours * 1e3 if r and ours else None
            pk = peaks[th]
            rows.append((config, pss, th, [
                fmt(ours, ".3g" if ours is not None and ours < 1 else ".1f"),
                fmt(dnn, ".3g" if dnn is not None and dnn < 1 else ".1f"),
                fmt(tch, ".3g" if tch is not None and tch < 1 else ".1f"),
                fmt(dnn / ours if dnn and ours else None, ".2f"),
                fmt(tch / ours if tch and ours else None, ".2f"),
                fmt(gflop, ".3g"),
                fmt(rate, ".1f"),
                fmt(rate / pk * 100 if rate and pk else None, ".0f"),
                fmt(gflop / pk * 1e3 if gflop and pk else None, ".3g"),
                fmt(r["tokens"] / ours * 1e3 if r and ours and r["tokens"] else None, ".0f"),
            ]))
    for config, pss, th, cells in rows:
        if all(c == "—" for c in cells[:3]):
            continue
        lines.append("| " + " | ".join([config, pss, str(th)] + cells) + " |")
    return "\n".join(lines)


def run_gemm(path, threads_list, quick, log):
    """{threads: {"M,N,K": {backend: GFLOP/s}}} from bench/gemm_bench."""
    out = {}
    for th in threads_list:
        res, _ = run_gbench(path, th, "", False, log,
                            ["--benchmark_min_time=0.01"] if quick else [])
        shapes = out.setdefault(th, {})
        for n, r in res.items():
            m = re.match(r"BM_(\w+)/(\d+)/(\d+)/(\d+)", n)
            if not m or not r.get("ms"):
                continue
            M, N, K = (int(x) for x in m.group(2, 3, 4))
            shapes.setdefault(f"{M},{N},{K}", {})[m.group(1)] = 2.0 * M * N * K / (r["ms"] * 1e6)
    return out


def gemm_table(gemm):
    lines = ["", "GEMM backends on the recurrent shapes (bench/gemm_bench, GFLOP/s; "
             "C(M,N) = A(M,K) B(N,K)^T):", "",
             "| M | N | K | thr | dnnl_sgemm | OpenBLAS sgemm | oneDNN matmul, packed |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for th, shapes in sorted(gemm.items()):
        for mnk, v in shapes.items():
            M, N, K = mnk.split(",")
            lines.append(f"| {M} | {N} | {K} | {th} | {fmt(v.get('dnnl_sgemm'), '.0f')} | "
                         f"{fmt(v.get('openblas_sgemm'), '.0f')} | "
                         f"{fmt(v.get('dnnl_matmul_packed'), '.0f')} |")
    return "\n".join(lines)


def merge(files, threads_list, substr):
    results = {th: {} for th in threads_list}
    torch = {th: {} for th in threads_list}
    gemm = {}
    for path in files:
        with open(path) as f:
            saved = json.load(f)
        for th_s, shapes in saved.get("gemm", {}).items():
            th = int(th_s)
            if th not in threads_list:
                continue
            for mnk, v in shapes.items():
                best = gemm.setdefault(th, {}).setdefault(mnk, {})
                for k, x in v.items():
                    best[k] = max(best.get(k, 0.0), x)
        for th_s, res in saved["results"].items():
            th = int(th_s)
            if th not in results:
                continue
            for n, r in res.items():
                if (substr not in n and not n.startswith("peak/")) or not r.get("ms"):
                    continue
                if n.startswith("peak/"):  # the ceiling: the fastest peak run
                    n = f"{n}@{path}"
                old = results[th].get(n)
                if old is None or r["ms"] < old["ms"]:
                    results[th][n] = r
        for th_s, res in saved.get("torch", {}).items():
            th = int(th_s)
            for n, ms in res.items():
                if th in torch and substr in n and (n not in torch[th] or ms < torch[th][n]):
                    torch[th][n] = ms
    for th in threads_list:  # the ceiling: the run whose median peak is the highest
        by_file = {}
        for n, r in results[th].items():
            if n.startswith("peak/"):
                by_file.setdefault(n.rsplit("@", 1)[1], []).append(r["GFLOP"] / r["ms"] * 1e3)
        if by_file:
            best = max(by_file, key=lambda f: statistics.median(by_file[f]))
            for n in [n for n in results[th] if n.startswith("peak/")]:
                if not n.endswith("@" + best):
                    del results[th][n]
    print(f"merged {len(files)} runs: {', '.join(files)}; each row from the run where it was "
          f"fastest, the ceiling from the run where it was highest; ms within a run = median of its repetitions")
    print()
    print(table(results, torch, threads_list))
    if gemm:
        print(gemm_table(gemm))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--filter", default="", help="substring of the benchmark names")
    ap.add_argument("--quick", action="store_true", help="one iteration each (smoke test)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-json", help="reuse PyTorch results saved by --save")
    ap.add_argument("--torch-reps", type=int, default=1,
                    help="timed runs per PyTorch case after its warm-up run (median)")
    ap.add_argument("--torch-prefixes", default="lstm/,lstm_step/,slstm/,mlstm_chunkwise/",
                    help="which of our configs get a PyTorch run (slstm_layer/ has no "
                         "PyTorch counterpart)")
    ap.add_argument("--save", help="write all raw results to this JSON file")
    ap.add_argument("--gemm", action="store_true", help="also run gemm_bench (backend table)")
    ap.add_argument("--merge", nargs="+", metavar="FILE",
                    help="run nothing: print the table of runs saved by --save, each row from "
                         "the run where it was fastest (on a shared machine, other load only "
                         "ever adds time)")
    args = ap.parse_args()
    threads_list = [int(t) for t in args.threads.split(",")]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    regex = re.escape(args.filter) + "|^peak/" if args.filter else ""

    if args.merge:
        return merge(args.merge, threads_list, args.filter)
    results, torch, context = {}, {}, {}
    saved_torch = {}
    if args.torch_json:
        with open(args.torch_json) as f:
            saved_torch = {int(k): v for k, v in json.load(f)["torch"].items()}
    for th in threads_list:
        results[th] = {}
        for prog in PROGRAMS:
            path = os.path.join(args.build, "bench", prog)
            if not os.path.exists(path):
                log(f"  {path} missing (build it: ninja -C {args.build} {prog})")
                continue
            res, context = run_gbench(path, th, regex, args.quick, log)
            for n, r in res.items():
                if n.startswith("peak/"):
                    n = f"{n}#{prog}"
                results[th][n] = r
        if args.torch_json:
            torch[th] = {n: ms for n, ms in saved_torch.get(th, {}).items()
                         if args.filter in n}
        elif not args.no_torch:
            prefixes = tuple(p for p in args.torch_prefixes.split(",") if p)
            configs = sorted({n.rsplit("/", 1)[0] for n in results[th]
                              if n.startswith(prefixes) and args.filter in n})
            torch[th] = run_torch(th, configs, 1 if args.quick else args.torch_reps, log)

    env = env_for(threads_list[0], False)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; host: {context.get('host_name', '?')}, "
          f"{context.get('num_cpus', '?')} CPUs @ {context.get('mhz_per_cpu', '?')} MHz; "
          f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY')}; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"{'QUICK (1 iteration, not a measurement)' if args.quick else 'medians of 3 repetitions'}; "
          f"PyTorch: {'saved ' + args.torch_json if args.torch_json else f'median of {args.torch_reps} run(s) after a warm-up'}")
    print()
    print(table(results, torch, threads_list))
    gemm = {}
    if args.gemm:
        gpath = os.path.join(args.build, "bench", "gemm_bench")
        if os.path.exists(gpath):
            gemm = run_gemm(gpath, threads_list, args.quick, log)
            print(gemm_table(gemm))
        else:
            log(f"  {gpath} missing (ninja -C {args.build} gemm_bench)")
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"results": results, "torch": torch, "gemm": gemm, "context": context}, f,
                      indent=1)


if __name__ == "__main__":
    main()
