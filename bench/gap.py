"""Probabilistic gap analysis benchmark (issue 7).

1. Closed-form check: random pruning of one Gaussian Linear layer, estimate vs exact E‖Δy‖².
2. Gap vs sparsity, random vs magnitude, on i.i.d. Gaussian FCNs (several widths and depths) and CNNs.
3. LeNet-300-100 on MNIST: per-layer max_sparsity vs global magnitude at the same overall sparsity,
   with test accuracy before and after fine-tuning.

    PYTHONPATH=src python bench/gap.py    # bench/results/gap.json, bench/gap/*.png, a RESULTS.md section
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from prunekit import theory  # noqa: E402

import gap_lenet  # noqa: E402
from results_md import write_section  # bench/ is on sys.path when a bench script runs

SPARSITIES = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
NETS = {
    "fcn_width": ("fcn", [[64, w, w, 10] for w in (64, 256, 1024)]),
    "fcn_depth": ("fcn", [[64] + [256] * d + [10] for d in (1, 3, 5)]),
    "cnn_width": ("cnn", [[3, c, c, 8] for c in (8, 32, 64)]),
}
BEGIN, END = "<!-- gap:begin -->", "<!-- gap:end -->"


def closed_form_check(trials: int) -> list[dict]:
    layer = theory.random_network([256, 128], std=1.0, seed=0)
    rows = []
    for rescale in (False, True):
        for s in (0.25, 0.5, 0.75, 0.9):
            rep = theory.gap(layer, sparsity=s, score="random", trials=trials, n_inputs=64, rescale=rescale)
            est, low, high = rep.mean_sq_interval()
            exact = theory.expected_sq_gap_linear(layer[0].weight, s, rescale=rescale)
            rows.append({"rescale": rescale, "sparsity": s, "estimate": est, "low": low, "high": high,
                         "exact": exact, "inside": low <= exact <= high})
    return rows


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def markdown(result: dict) -> str:
    meta = result["meta"]
    out = [BEGIN, "## Probabilistic gap analysis (issue 7, `bench/gap.py`)", "",
           f"Machine: {meta['machine']} (2 CPU cores shared with other work), torch {meta['torch']}, "
           f"{meta['date']}, wall time {meta['wall_s']:.0f} s. Reproduce: `{meta['command']}`.", "",
           "**Closed form.** Random pruning of one Linear 256→128 layer with i.i.d. N(0,1) weights, "
           "x ~ N(0, I); estimate of E‖Δy‖² (t interval over mask draws, 95 %) vs s·‖W‖² (no rescaling) "
           "and s/(1−s)·‖W‖² (survivors scaled by 1/(1−s)).", "",
           "| rescale | s | estimate [95 % CI] | closed form | inside |", "|---|---|---|---|---|"]
    for r in result["closed_form"]:
        out.append(f"| {r['rescale']} | {r['sparsity']} | {_fmt(r['estimate'])} [{_fmt(r['low'])}, "
                   f"{_fmt(r['high'])}] | {_fmt(r['exact'])} | {'yes' if r['inside'] else 'NO'} |")
    out += ["", "**Gap vs sparsity** on i.i.d. Gaussian networks (He scale, ReLU, no bias), every layer pruned "
            "to the same fraction; E[(‖Δy‖/‖y‖)²] over x ~ N(0, I) (random: mean over "
            f"{meta['trials']} mask draws). Plots: " + ", ".join(f"`bench/gap/{k}.png`" for k in NETS) + ".", "",
            "| network | score | " + " | ".join(f"s={s}" for s in SPARSITIES) + " |",
            "|---|---|" + "---|" * len(SPARSITIES)]
    for rows in result["sweeps"].values():
        for net in dict.fromkeys(r["net"] for r in rows):
            for score in ("magnitude", "random"):
                vals = {round(r["sparsity"], 2): r["rel_mean_sq"] for r in rows if r["net"] == net and r["score"] == score}
                out.append(f"| {net} | {score} | " + " | ".join(_fmt(vals[round(s, 2)]) for s in SPARSITIES) + " |")
    out += ["", "First-order heuristic 1 − (1 − e(s))^L (`theory.predicted_rel_gap`), with e(s) the fraction of "
            "an i.i.d. Gaussian layer's squared weight mass removed (random: s; magnitude: s − 2tφ(t), "
            "t = Φ⁻¹((1+s)/2)) and L the number of layers; ReLU's effect is ignored.", "",
            "| L | score | " + " | ".join(f"s={s}" for s in SPARSITIES) + " |", "|---|---|" + "---|" * len(SPARSITIES)]
    for depth in sorted({r["depth"] for rows in result["sweeps"].values() for r in rows}):
        for score in ("magnitude", "random"):
            out.append(f"| {depth} | {score} | "
                       + " | ".join(_fmt(theory.predicted_rel_gap(s, depth, score)) for s in SPARSITIES) + " |")
    lenet = result.get("lenet")
    if lenet:
        d = lenet["dense"]
        out += ["", "**LeNet-300-100 on MNIST.** Dense model trained "
                f"{lenet['epochs']} epochs (seed {lenet['seed']}), test top-1 {d['test_top1']:.4f}. "
                f"`max_sparsity` per layer (magnitude, gap = relative L2 of the logits, δ = {gap_lenet.DELTA}, "
                f"Clopper–Pearson lower end, {lenet['n_alloc']} validation images); global magnitude at the same "
                f"overall sparsity. P(gap ≤ ε) re-checked with all layers pruned on {lenet['n_check']} other "
                f"validation images. Test top-1 right after pruning and after {lenet['ft_epochs']} epochs of "
                "fine-tuning (SGD 0.01, masks held; one seed). Plot: `bench/gap/lenet300_layers.png`.", "",
                "| ε | overall s | method | fc1 / fc2 / fc3 sparsity | P(gap ≤ ε) [95 % CI] | top-1 pruned "
                "| top-1 fine-tuned |", "|---|---|---|---|---|---|---|"]
        for row in lenet["rows"]:
            for name in ("max_sparsity", "global"):
                m = row[name]
                method = f"max_sparsity ({row['mode']})" if name == "max_sparsity" else "global magnitude"
                out.append(f"| {row['eps']} | {m['sparsity']:.3f} | {method} | "
                           + " / ".join(f"{v:.3f}" for v in m["layers"].values())
                           + f" | {m['p_within']:.3f} [{m['p_low']:.3f}, {m['p_high']:.3f}] | "
                           f"{m['top1_pruned']:.4f} | {m['top1_finetuned']:.4f} |")
    out += ["", "**Findings (computed from this run).**", *findings(result)]
    out.append(END)
    return "\n".join(out)


def findings(result: dict) -> list[str]:
    """Short computed statements, so the text cannot drift from the numbers above."""
    rows = [r for rs in result["sweeps"].values() for r in rs]
    pairs = {(r["net"], round(r["sparsity"], 2)): {} for r in rows}
    for r in rows:
        pairs[r["net"], round(r["sparsity"], 2)][r["score"]] = r["rel_mean_sq"]
    below = sum(v["magnitude"] < v["random"] for v in pairs.values())
    fcn = [r for r in rows if r["kind"] == "fcn" and r["sparsity"] <= 0.7]
    ratio = sorted(r["rel_mean_sq"] / theory.predicted_rel_gap(r["sparsity"], r["depth"], r["score"]) for r in fcn)
    out = [f"- Magnitude pruning's relative gap is below random pruning's at {below} of {len(pairs)} "
           "(network, sparsity) points.",
           f"- On the FCNs at s ≤ 0.7, measured / heuristic ranges {ratio[0]:.2f}–{ratio[-1]:.2f} "
           f"(median {ratio[len(ratio) // 2]:.2f}).",
           f"- The closed form lies inside the 95 % interval in {sum(r['inside'] for r in result['closed_form'])} "
           f"of {len(result['closed_form'])} cases."]
    lenet = result.get("lenet")
    if lenet:
        for mode in ("layer", "joint"):
            rs = [r for r in lenet["rows"] if r["mode"] == mode]
            met = sum(r["max_sparsity"]["p_low"] >= 1 - r["delta"] for r in rs)
            gmet = sum(r["global"]["p_low"] >= 1 - r["delta"] for r in rs)
            diff = [r["max_sparsity"]["top1_finetuned"] - r["global"]["top1_finetuned"] for r in rs]
            out.append(f"- LeNet, `{mode}` allocation: held-out P(gap ≤ ε) lower end ≥ 1 − δ in {met} of {len(rs)} "
                       f"ε values (global magnitude at the same sparsity: {gmet}); fine-tuned top-1 minus global's: "
                       + ", ".join(f"{d:+.4f}" for d in diff) + ".")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=8, help="mask draws per random-pruning point")
    ap.add_argument("--n-inputs", type=int, default=128)
    ap.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "datasets" / "mnist"))
    ap.add_argument("--eps", type=float, nargs="+", default=[0.2, 0.5, 1.0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--ft-epochs", type=int, default=2)
    ap.add_argument("--skip-lenet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # small models on a shared 2-core machine: one thread is several times faster
    t0 = time.time()
    plots = HERE / "gap"
    plots.mkdir(exist_ok=True)
    result: dict = {"closed_form": closed_form_check(trials=200), "sweeps": {}}
    for key, (kind, configs) in NETS.items():
        rows = theory.sweep(configs, SPARSITIES, kind=kind, n_inputs=args.n_inputs, trials=args.trials)
        result["sweeps"][key] = rows
        theory.plot_sweep(rows, plots / f"{key}.png", title=f"i.i.d. Gaussian {kind.upper()}: {key.replace('_', ' ')}")
        print(f"{key}: {time.time() - t0:.0f} s", flush=True)
    if not args.skip_lenet:
        result["lenet"] = gap_lenet.run(args.data_dir, args.eps, epochs=args.epochs, ft_epochs=args.ft_epochs,
                                        n_alloc=1000, n_check=2000)
        gap_lenet.plot(result["lenet"], plots / "lenet300_layers.png")
    result["meta"] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": time.time() - t0,
        "trials": args.trials, "n_inputs": args.n_inputs,
        "command": "PYTHONPATH=src python bench/gap.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "gap.json").write_text(json.dumps(result, indent=1))
    write_section(markdown(result), BEGIN, END, HERE / "RESULTS.md")
    print(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
