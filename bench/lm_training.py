"""Training recipe and Wanda (issue 12): does longer training of the byte-level GPT, or the GPT-2 weight
decay that spares LayerNorm gains and biases, give it the outlier input features that make Wanda beat
magnitude in large LMs?

Runs bench/lm.py's whole protocol (same model, calibration and test windows) on dense models trained
for several step counts and decay recipes (each a full cosine run, cached like lm.py's), and tabulates
per base: dense perplexity, the spread of the LayerNorm gains and of each pruned layer's input-column
norms ‖X_j‖ (Wanda's factor), and each method's perplexity increase over dense relative to layer-wise
magnitude's. Writes bench/results/lm_training.json and its section of bench/RESULTS.md.

    PYTHONPATH=src nice -n 10 python bench/lm_training.py [--bases 1000,4000,1000:no-norm-decay]
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
    ap.add_argument("--bases", default="1000,4000,1000:no-norm-decay",
                    help="comma-separated bases: STEPS (weight decay on every parameter, lm.py's recipe) or "
                         "STEPS:no-norm-decay (LayerNorm gains/shifts and biases not decayed, as GPT-2)")
    ap.add_argument("--add", action="store_true",
                    help="keep the bases already in the JSON and add (or redo) these: one expensive base at a time")
    return ap.parse_args(argv)


def bases(spec: str) -> list[tuple[int, bool]]:
    """(steps, decay_norms_and_biases) for each entry of ``--bases``."""
    out = []
    for entry in spec.split(","):
        steps, _, recipe = entry.strip().partition(":")
        if not steps.isdigit() or recipe not in ("", "no-norm-decay"):
            raise SystemExit(f"--bases entry {entry!r}: expected STEPS or STEPS:no-norm-decay")
        out.append((int(steps), recipe == ""))
    return out


def summary(res: dict) -> dict:
    """One base's row: dense perplexity, norm spreads, and each method's increase at each sparsity."""
    increase = {(r["method"], r["sparsity"]): r["test_ppl"] - res["dense_test_ppl"]
                for r in res["rows"] if r["structure"] == "weights"}
    spread = list(res["input_norm_spread"].values())
    agree = list(res.get("wanda_row_agreement", {}).values())
    return {"steps": res["base"]["steps"], "decay_norms_and_biases": res["base"]["decay_norms_and_biases"],
            "ln_gain_spread": res["ln_gain_spread"], "tokens": res["base"]["tokens_seen"], "epochs": res["base"]["tokens_seen"] / res["train_tokens"],
            "train_cpu_s": res["base"]["train_cpu_s"], "dense_test_ppl": res["dense_test_ppl"],
            "spread_median": statistics.median(spread), "spread_max": max(spread),
            "wanda_row_agreement": statistics.mean(agree) if agree else None,
            "increase": {f"{m}@{s}": v for (m, s), v in increase.items()}}


def run(args: argparse.Namespace, kept: list[dict] = ()) -> dict:
    """lm.py's protocol on each base of ``args.bases``, after the ``kept`` results of other bases."""
    wanted = bases(args.bases)
    done = [b for b in kept if (b["summary"]["steps"], b["summary"]["decay_norms_and_biases"]) not in wanted]
    for steps, decay_all in wanted:
        one = copy.copy(args)
        one.steps, one.decay_norms_and_biases = steps, decay_all
        res = lm.run(one)
        done.append({"summary": summary(res), "full": res})
        print(json.dumps(done[-1]["summary"], indent=1), flush=True)
    return {"bases": done, "threads": args.threads, "machine": done[0]["full"]["machine"],
            "torch": done[0]["full"]["torch"], "model": args.model, "dataset": args.dataset}


def recipe(row: dict) -> str:
    return f"{row['steps']} steps" + ("" if row["decay_norms_and_biases"] else ", norms and biases not decayed")


def markdown(res: dict) -> str:
    rows = [b["summary"] for b in res["bases"]]
    sparsities = sorted({float(k.split("@")[1]) for k in rows[0]["increase"]} & {0.5, 0.6})
    lines = [START, f"## Training recipe and Wanda: `{res['model']}` on {res['dataset']} (issue 12, `bench/lm_training.py`)", "",
             "Each base is bench/lm.py's dense model trained with AdamW (lr 2e-3, weight decay 0.1, cosine) for the "
             "steps given, decaying every parameter (lm.py's recipe) or, as GPT-2 does, only the weight matrices "
             "and embeddings; then pruned one-shot by bench/lm.py's protocol. LayerNorm gains: the largest "
             "max/median |γ| over the model's LayerNorms. ‖X_j‖ spread: max/median of a pruned layer's "
             "input-column norms on the calibration windows (Wanda's factor), the median and the largest over "
             "the 48 layers. Wanda = row magnitude: the mean share of weights on which Wanda's 50 % mask and "
             "per-row magnitude's agree.", "",
             "| base | tokens (epochs) | train CPU-min | dense ppl | LayerNorm gains | ‖X_j‖ spread median / max "
             "| Wanda = row magnitude |", "|---" * 7 + "|"]
    for r in rows:
        agree = f"{100 * r['wanda_row_agreement']:.1f} %" if r["wanda_row_agreement"] is not None else "–"
        lines.append(f"| {recipe(r)} | {r['tokens'] / 1e6:.1f} M ({r['epochs']:.2f}) | {r['train_cpu_s'] / 60:.0f} | "
                     f"{r['dense_test_ppl']:.3f} | {r['ln_gain_spread']:.2f} | {r['spread_median']:.1f} / "
                     f"{r['spread_max']:.1f} | {agree} |")
    lines += ["", "Perplexity increase over dense: layer-wise magnitude's, and each method's as a multiple of it "
              "(issue 12's bar for Wanda and SparseGPT at 50 %: ≤ 0.5×).", "",
              "| base | sparsity | magnitude (layer) | " + " | ".join(SHOWN) + " |", "|---" * (len(SHOWN) + 3) + "|"]
    for r in rows:
        inc = r["increase"]
        for s in sparsities:
            base = inc[f"magnitude (layer)@{s}"]
            cells = [f"{inc[f'{m}@{s}'] / base:.2f}×" if f"{m}@{s}" in inc else "–" for m in SHOWN]
            lines.append(f"| {recipe(r)} | {int(100 * s)} % | +{base:.3f} | " + " | ".join(cells) + " |")
    lines += ["", f"Machine: {res['machine']}, torch {res['torch']}, {res['threads']} thread(s), under `nice -n 10`.", END]
    return "\n".join(lines)


def main() -> None:
    args = parse()
    old = json.loads(JSON.read_text()) if args.report_only or args.add else {"bases": []}
    res = old if args.report_only else run(args, old["bases"])
    JSON.write_text(json.dumps(res, indent=1))
    section = markdown(res)
    write_section(section, START, END, lm.RESULTS)
    print(section)


if __name__ == "__main__":
    main()
