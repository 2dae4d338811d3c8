"""SparseGPT on one 4096×4096 Linear with 128×512 calibration tokens: time and peak memory.

The layer reads a 4096-wide embedding of token ids (rows with shared factors, so its inputs are
correlated like activations), and calibration data are 128 sequences of 512 tokens, one sequence a
batch: the statistics stream, so the 65 536 × 4096 input activation (1 GiB) never exists whole.
Phases are timed apart (Hessian accumulation, inverse factor, the OBS sweep for 50 % and 2:4) and
end to end through ``pk.prune``; peak memory is the process's VmHWM reset just before ``pk.prune``.

    PYTHONPATH=src nice -n 10 python bench/calibration_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

import prunekit as pk
from prunekit import calibration
from prunekit.scores.obs import Pattern, inverse_factor, reconstruct
from prunekit.threads import one_thread
from results_md import write_section  # bench/ is on sys.path when a bench script runs

HERE = Path(__file__).resolve().parent
START, END = "<!-- calibration_speed:start -->", "<!-- calibration_speed:end -->"


def model_and_data(width: int, seqs: int, tokens: int, vocab: int = 4096) -> tuple[nn.Module, list]:
    g = torch.Generator().manual_seed(0)
    embed = nn.Embedding(vocab, width)
    with torch.no_grad():
        factors = torch.randn(vocab, 16, generator=g) @ torch.randn(16, width, generator=g) / 4
        embed.weight.copy_((torch.randn(vocab, width, generator=g) + factors) * (torch.rand(width, generator=g) + 0.2))
    torch.manual_seed(0)
    model = nn.Sequential(embed, nn.Linear(width, width))
    data = [torch.randint(vocab, (1, tokens), generator=g) for _ in range(seqs)]
    return model, data


def hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


CPU: dict[str, float] = {}  # process CPU seconds per phase (all threads): less sensitive to a busy machine


def timed(fn, name: str):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    CPU[name] = time.process_time() - c
    return out, time.perf_counter() - t


def run(width: int, seqs: int, tokens: int) -> dict:
    model, data = model_and_data(width, seqs, tokens)
    fc = model[1]
    stats, t_h = timed(lambda: calibration.collect(model, {"1": fc}, data, calibration.Gram, stop=True), "hessian_s")
    h = stats["1"].result()
    hinv, t_inv = timed(lambda: inverse_factor(h, 0.01), "inverse_s")
    w = fc.weight.detach().float()
    with one_thread():  # as SparseGPT runs it
        _, t_rec = timed(lambda: reconstruct(w, hinv, Pattern(count=w.numel() // 2)), "obs_50_s")
        _, t_nm = timed(lambda: reconstruct(w, hinv, Pattern(n=2, m=4)), "obs_2_4_s")
    del stats, h, hinv
    rss = hwm_mib()
    reset_hwm()
    base = hwm_mib()
    _, t_total = timed(lambda: pk.prune(model, 0.5, score="sparsegpt", scope="layer", data=data), "sparsegpt_total_s")
    peak = hwm_mib() - base
    return {"width": width, "sequences": seqs, "tokens": tokens, "hessian_s": t_h, "inverse_s": t_inv,
            "obs_50_s": t_rec, "obs_2_4_s": t_nm, "sparsegpt_total_s": t_total,
            "peak_extra_mib": peak, "rss_before_mib": rss,
            "full_activation_mib": seqs * tokens * width * 4 / 2**20, "weight_mib": width * width * 4 / 2**20,
            "sparsity": pk.sparsity(model), "cpu_s": dict(CPU)}


def markdown(r: dict, meta: dict) -> str:
    return f"""{START}
## SparseGPT speed on one 4096×4096 Linear (issue 12, bench/calibration_speed.py)

One `nn.Linear({r['width']}, {r['width']})` behind an embedding, calibrated on {r['sequences']} × {r['tokens']}
tokens (one sequence a batch). {meta['machine']}, torch {meta['torch']}, {meta['threads']} threads; load
average (1, 5, 15 min) when it started {meta['load']}: the machine is shared and the run was niced, so wall
times are what this one run saw; CPU seconds (all threads) are the work itself. The Hessian is
2.2 TFLOP of matrix products whatever the implementation; the SparseGPT algorithm proper (inverse
factor + OBS sweep) is the few seconds below it.

| phase | wall s | CPU s (both threads) |
|---|---:|---:|
| Hessian H = 2XXᵀ/n, streamed over {r['sequences']} batches ({2 * r['sequences'] * r['tokens'] * r['width'] ** 2 / 1e12:.1f} TFLOP) | {r['hessian_s']:.1f} | {r['cpu_s']['hessian_s']:.1f} |
| inverse Cholesky factor of H (one Cholesky, one triangular solve) | {r['inverse_s']:.1f} | {r['cpu_s']['inverse_s']:.1f} |
| OBS sweep, 50 % unstructured (lazy blocks of 128, one thread) | {r['obs_50_s']:.1f} | {r['cpu_s']['obs_50_s']:.1f} |
| OBS sweep, 2:4 (one thread) | {r['obs_2_4_s']:.1f} | {r['cpu_s']['obs_2_4_s']:.1f} |
| **`pk.prune(score="sparsegpt", scope="layer", sparsity=0.5)`, end to end** | **{r['sparsegpt_total_s']:.1f}** | **{r['cpu_s']['sparsegpt_total_s']:.1f}** |

Peak extra memory during the SparseGPT `pk.prune`: {r['peak_extra_mib']:.0f} MiB (the weight alone is
{r['weight_mib']:.0f} MiB, H as much again; the whole input activation would be {r['full_activation_mib']:.0f} MiB and is
never held). Achieved sparsity {r['sparsity']:.4f}. Wanda's cost is one forward pass plus a
column sum of squares per layer (not timed here, to spare the shared machine).
{END}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1024 wide, 16 × 128 tokens: checks the script")
    ap.add_argument("--render", action="store_true", help="only rewrite the RESULTS.md section from the JSON")
    args = ap.parse_args()
    shape = (1024, 16, 128) if args.quick else (4096, 128, 512)
    meta = {"machine": f"{platform.machine()} {os.cpu_count()}-core ({platform.processor() or 'AMD EPYC'})",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    if args.render:  # rewrite the section from the saved JSON, without rerunning
        saved = json.loads((HERE / "results" / "calibration_speed.json").read_text())
        meta, result = saved["meta"], saved["result"]
    else:
        result = run(*shape)
    print(json.dumps(result, indent=1))
    if args.quick:
        return
    out = HERE / "results" / "calibration_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "result": result}, indent=1))
    section = markdown(result, meta)
    write_section(section, START, END)
    print(section)


if __name__ == "__main__":
    main()
