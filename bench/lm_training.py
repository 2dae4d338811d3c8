"""Training length and Wanda (issue 12): does longer training of the byte-level GPT give it the outlier
input features that make Wanda beat magnitude in large LMs?

Runs bench/lm.py's whole protocol (same model, recipe, calibration and test windows) on dense models
trained for several step counts (each a full cosine run, cached like lm.py's), and tabulates per base:
dense perplexity, the spread of each pruned layer's input-column norms ‖X_j‖ (Wanda's factor), and each
method's perplexity increase over dense relative to layer-wise magnitude's. Writes
bench/results/lm_training.json and its section of bench/RESULTS.md.

    PYTHONPATH=src nice -n 10 python bench/lm_training.py [--steps-list 1000,4000]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics

import lm  # bench/ is on sys.path when this script runs
from results_md import write_section

JSON = lm.ROOT / "bench" / "results" / "lm_training.json"
START, END = "<!-- lm-training:start -->", "<!-- lm-training:end -->"
SHOWN = ("magnitude (row)", "wanda", "wanda (layer)", "sparsegpt")  # each relative to "magnitude (layer)"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = lm.parser()
    ap.description = __doc__.splitlines()[0]
    ap.add_argument("--steps-list", default="1000,4000", help="comma-separated training step counts, one base each")
    return ap.parse_args(argv)


def summary(res: dict) -> dict:
    """One base's row: dense perplexity, input-norm spread, and each method's increase at each sparsity."""
    increase = {(r["method"], r["sparsity"]): r["test_ppl"] - res["dense_test_ppl"]
                for r in res["rows"] if r["structure"] == "weights"}
    spread = list(res["input_norm_spread"].values())
    agree = list(res.get("wanda_row_agreement", {}).values())
    return {"steps": res["base"]["steps"], "tokens": res["base"]["tokens_seen"], "epochs": res["base"]["tokens_seen"] / res["train_tokens"],
            "train_cpu_s": res["base"]["train_cpu_s"], "dense_test_ppl": res["dense_test_ppl"],
            "spread_median": statistics.median(spread), "spread_max": max(spread),
            "wanda_row_agreement": statistics.mean(agree) if agree else None,
            "increase": {f"{m}@{s}": v for (m, s), v in increase.items()}}


def run(args: argparse.Namespace) -> dict:
    bases = []
    for steps in (int(s) for s in args.steps_list.split(",")):
        one = copy.copy(args)
        one.steps = steps
        res = lm.run(one)
        bases.append({"summary": summary(res), "full": res})
        print(json.dumps(bases[-1]["summary"], indent=1), flush=True)
    return {"bases": bases, "threads": args.threads, "machine": bases[0]["full"]["machine"],
            "torch": bases[0]["full"]["torch"], "model": args.model, "dataset": args.dataset}


def markdown(res: dict) -> str:
    rows = [b["summary"] for b in res["bases"]]
    sparsities = sorted({float(k.split("@")[1]) for k in rows[0]["increase"]} & {0.5, 0.6})
    head = ["steps", "tokens (epochs)", "train CPU-min", "dense ppl", "‖X_j‖ spread median / max", "Wanda = row mag."]
    cols = [f"{m} {int(100 * s)} %" for s in sparsities for m in ("magnitude (layer)",) + SHOWN]
    lines = [START, f"## Training length and Wanda: `{res['model']}` on {res['dataset']} (issue 12, `bench/lm_training.py`)", "",
             "Each base is bench/lm.py's dense model and recipe trained for a different number of steps (a full "
             "cosine schedule each), then pruned one-shot by bench/lm.py's protocol. Columns after the first six: "
             "the perplexity increase over dense of layer-wise magnitude, then each method's increase as a multiple "
             "of layer magnitude's (issue 12's bar for Wanda and SparseGPT: ≤ 0.5×). Spread: max/median of a pruned "
             "layer's input-column norms ‖X_j‖ on the calibration windows, the median and the largest over the 48 "
             "layers; Wanda = row mag.: the mean share of weights on which Wanda's 50 % mask and per-row magnitude's agree.",
             "", "| " + " | ".join(head + cols) + " |", "|---" * (len(head) + len(cols)) + "|"]
    for r in rows:
        inc = r["increase"]
        cells = [str(r["steps"]), f"{r['tokens'] / 1e6:.1f} M ({r['epochs']:.2f})", f"{r['train_cpu_s'] / 60:.0f}",
                 f"{r['dense_test_ppl']:.3f}", f"{r['spread_median']:.1f} / {r['spread_max']:.1f}",
                 f"{100 * r['wanda_row_agreement']:.1f} %" if r["wanda_row_agreement"] is not None else "–"]
        for s in sparsities:
            base = inc[f"magnitude (layer)@{s}"]
            cells.append(f"+{base:.3f}")
            cells += [f"{inc[f'{m}@{s}'] / base:.2f}×" if f"{m}@{s}" in inc else "–" for m in SHOWN]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {res['machine']}, torch {res['torch']}, {res['threads']} thread(s), under `nice -n 10`.", END]
    return "\n".join(lines)


def main() -> None:
    args = parse()
    res = json.loads(JSON.read_text()) if args.report_only else run(args)
    JSON.write_text(json.dumps(res, indent=1))
    section = markdown(res)
    write_section(section, START, END, lm.RESULTS)
    print(section)


if __name__ == "__main__":
    main()
