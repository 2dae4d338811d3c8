"""Language-model pruning benchmark (issue 12): test perplexity of a small byte-level GPT after one-shot
pruning with magnitude (layer and per-row scope), Wanda and SparseGPT, no fine-tuning.

The dense model is trained once on wiki-summaries' training split and cached (bench/cache/, not in git);
perplexity follows the strided protocol on the fixed test split; calibration windows come from train.
Every Linear in the blocks is pruned; the token/position embeddings and the output head stay dense, as
in the Wanda and SparseGPT papers. Writes bench/results/lm.json and its section of bench/RESULTS.md.

    PYTHONPATH=src nice -n 10 python bench/lm.py [--data-dir ../shared/datasets/wiki-summaries]
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

import prunekit as pk
from prunekit.data.text import calibration, perplexity
from results_md import write_section  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS, JSON = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results" / "lm.json"
CACHE = ROOT / "bench" / "cache"
START, END = "<!-- lm:start -->", "<!-- lm:end -->"
SPARSITIES = (0.3, 0.5, 0.6, 0.7)
KEEP_DENSE = ["head"]  # the output head; embeddings are not prunable by default
METHODS = {  # name -> pk.prune options; scores and scopes missing from this build are skipped and noted
    "magnitude (layer)": {"score": "magnitude", "scope": "layer"},
    "magnitude (row)": {"score": "magnitude", "scope": "row"},
    "wanda": {"score": "wanda", "scope": "row"},
    "wanda (layer)": {"score": "wanda", "scope": "layer"},  # splits Wanda's two changes: norms, then rows
    "sparsegpt": {"score": "sparsegpt", "scope": "layer"},
}
NM_METHODS = {"magnitude": "magnitude", "wanda": "wanda", "sparsegpt": "sparsegpt"}


def train_base(args: argparse.Namespace, train, val) -> tuple[nn.Module, dict]:
    """The dense LM, trained once per settings and cached as safetensors (read back without pickling)."""
    from safetensors.torch import load_file, save_file

    settings = {"model": args.model, "seq_len": args.seq_len, "steps": args.steps, "batch_size": args.batch_size,
                "lr": args.lr, "weight_decay": 0.1, "decay_norms_and_biases": args.decay_norms_and_biases,
                "warmup_steps": args.steps // 20, "seed": 0}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(args.cache)
    path, meta_path = cache / f"lm-{key}.safetensors", cache / f"lm-{key}.json"
    torch.manual_seed(0)
    model = pk.models.create(args.model, num_classes=train.num_classes, input_size=args.seq_len)
    if path.is_file() and meta_path.is_file():
        model.load_state_dict(load_file(str(path)))
        return model, json.loads(meta_path.read_text())
    start = time.process_time()
    history = pk.train(model, train, None, steps=args.steps, batch_size=args.batch_size, lr=args.lr, optimizer="adamw",
                       weight_decay=0.1, decay_norms_and_biases=args.decay_norms_and_biases, lr_schedule="cosine",
                       warmup_steps=args.steps // 20, seed=0, progress=sys.stderr.isatty())
    meta = {**settings, "tokens_seen": args.steps * args.batch_size * args.seq_len, "train_cpu_s": time.process_time() - start,
            "epochs": history.records, "params": sum(p.numel() for p in model.parameters())}
    cache.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(path))
    meta_path.write_text(json.dumps(meta, indent=1))
    return model, meta


def test_ppl(model: nn.Module, test) -> float:
    return perplexity(pk.evaluate(model, test, batch_size=64)["loss"])


@torch.no_grad()
def layer_inputs(model: nn.Module, windows) -> dict[str, torch.Tensor]:
    """Each pruned Linear's inputs ``(rows, features)`` in one forward pass of ``model`` on ``windows``."""
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_pre_hook(lambda _, inputs, n=n: seen.__setitem__(n, inputs[0].flatten(0, -2)))
               for n, m in model.named_modules() if isinstance(m, nn.Linear) and n not in KEEP_DENSE]
    try:
        model.eval()(windows)
    finally:
        for h in handles:
            h.remove()
    return seen


@torch.no_grad()
def reconstruction(dense: nn.Module, pruned: nn.Module, windows) -> dict[str, float]:
    """‖WX − ŴX‖_F / ‖WX‖_F per pruned Linear, X the inputs that layer sees in the pruned model."""
    dense_w, pruned_w = (dict((n, m.weight) for n, m in net.named_modules() if isinstance(m, nn.Linear))
                         for net in (dense, pruned))
    return {n: float((x @ (dense_w[n] - pruned_w[n]).T).norm() / (x @ dense_w[n].T).norm())
            for n, x in layer_inputs(pruned, windows).items()}


def norm_spread(model: nn.Module, windows) -> dict[str, float]:
    """Per pruned Linear, max / median of its input columns' norms ‖X_j‖ (Wanda's factor): near 1, Wanda
    ranks like per-row magnitude; large with outlier features, as in large LMs (Dettmers et al. 2022)."""
    norms = {n: x.norm(dim=0) for n, x in layer_inputs(model, windows).items()}
    return {n: float(v.max() / v.median()) for n, v in norms.items()}


def ln_gain_spread(model: nn.Module) -> float:
    """The largest max/median |γ| over the model's LayerNorm gains: the features LLMs scale up into outliers."""
    gains = [m.weight.detach().abs() for m in model.modules() if isinstance(m, nn.LayerNorm) and m.weight is not None]
    return max(float(g.max() / g.median()) for g in gains) if gains else float("nan")


def available(options: dict) -> str | None:
    """Why a method cannot run in this build (its score or scope is not registered), or None."""
    from prunekit import choices

    if options["score"] not in choices.score_names(options.get("structure", "weights")):
        return f"score {options['score']!r} is not in this build"
    if "scope" in options and options["scope"] not in choices.scope_names():
        return f"scope {options['scope']!r} is not in this build"
    return None


def prune_eval(dense: nn.Module, options: dict, sparsity: float | None, calib, test) -> tuple[nn.Module, float, float]:
    model = copy.deepcopy(dense)
    start = time.process_time()
    pk.prune(model, sparsity, exclude=KEEP_DENSE, data=calib, **options)
    seconds = time.process_time() - start
    return model, test_ppl(model, test), seconds


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    train, val, test = pk.data.load(args.dataset, args.data_dir, seq_len=args.seq_len)
    dense, meta = train_base(args, train, val)
    val, test = (d.subset(torch.arange(min(args.eval_windows, len(d)))) for d in (val, test))
    calib = calibration(train, args.calib_windows, seed=0)
    batches = [calib.batch(torch.arange(i, min(i + 16, len(calib)))) for i in range(0, len(calib), 16)]
    probe = test.images[torch.randperm(len(test), generator=torch.Generator().manual_seed(1))[:32]]
    out = {"base": meta, "dense_test_ppl": test_ppl(dense, test), "dense_val_ppl": perplexity(pk.evaluate(dense, val)["loss"]),
           "test_tokens": test.tokens, "train_tokens": train.tokens, "calib_tokens": calib.tokens, "dataset": args.dataset,
           "machine": f"{platform.processor() or platform.machine()}, 2-core AMD EPYC", "torch": torch.__version__,
           "threads": args.threads, "rows": [], "skipped": {}, "recon_50": {},
           "input_norm_spread": norm_spread(dense, calib.images), "ln_gain_spread": ln_gain_spread(dense)}
    print(f"dense test ppl {out['dense_test_ppl']:.3f}", flush=True)
    zeros: dict[str, dict[str, torch.Tensor]] = {}  # each method's pruned weights per layer at 50 %
    jobs = [(name, opts, s) for name, opts in METHODS.items() for s in SPARSITIES]
    jobs += [(f"{name} 2:4", {"score": score, "structure": "2:4"}, None) for name, score in NM_METHODS.items()]
    for name, opts, s in jobs:
        why = available(opts)
        if why:
            out["skipped"][name] = why
            continue
        model, ppl, seconds = prune_eval(dense, opts, s, batches, test)
        out["rows"].append({"method": name, "sparsity": s if s is not None else 0.5, "structure": opts.get("structure", "weights"),
                            "test_ppl": ppl, "prune_cpu_s": seconds, "achieved_sparsity": pk.sparsity(model)})
        print(f"{name:20s} {s} ppl {ppl:.3f} ({seconds:.2f} CPU-s)", flush=True)
        if s == 0.5:
            out["recon_50"][name] = reconstruction(dense, model, probe)
            zeros[name] = {n: m.weight == 0 for n, m in model.named_modules() if n in out["recon_50"][name]}
    if {"wanda", "magnitude (row)"} <= set(zeros):
        out["wanda_row_agreement"] = {n: float((z == zeros["magnitude (row)"][n]).float().mean())
                                      for n, z in zeros["wanda"].items()}
    return out


def markdown(res: dict) -> str:
    b = res["base"]
    methods = list(dict.fromkeys(r["method"] for r in res["rows"] if r["structure"] == "weights"))
    ppl = {(r["method"], r["sparsity"]): r["test_ppl"] for r in res["rows"]}
    lines = [START, f"## Language-model pruning: byte-level GPT on {res['dataset']} (issue 12, `bench/lm.py`)", "",
             f"Model `{b['model']}` ({b['params'] / 1e6:.2f} M parameters, context {b['seq_len']} bytes), trained once: "
             f"{b['steps']} AdamW steps × {b['batch_size']} windows × {b['seq_len']} bytes = {b['tokens_seen'] / 1e6:.1f} M "
             f"tokens ({b['tokens_seen'] / res['train_tokens']:.2f} epochs of the {res['train_tokens'] / 1e6:.2f} M training bytes), "
             f"{b['train_cpu_s'] / 60:.1f} CPU-min. "
             f"Dense perplexity per byte: test {res['dense_test_ppl']:.3f}, validation {res['dense_val_ppl']:.3f} "
             f"(the first {res['test_tokens']:,} bytes of each split, windows of {b['seq_len']}, stride {b['seq_len']}). "
             f"One-shot pruning of every Linear in the blocks (head and embeddings dense), no fine-tuning; "
             f"calibration: {res['calib_tokens']:,} bytes ({res['calib_tokens'] // b['seq_len']} random training windows).",
             "", "| method | " + " | ".join(f"{int(100 * s)} %" for s in SPARSITIES) + " | 2:4 |",
             "|---" * (len(SPARSITIES) + 2) + "|"]
    for m in methods:
        nm = ppl.get((m.split(" (")[0] + " 2:4", 0.5))
        cells = [f"{ppl[(m, s)]:.3f}" if (m, s) in ppl else "–" for s in SPARSITIES]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {nm:.3f} |" if nm is not None else f"| {m} | " + " | ".join(cells) + " | – |")
    lines.append("| dense (reference) |" + f" {res['dense_test_ppl']:.3f} |" * (len(SPARSITIES) + 1))
    if res["skipped"]:
        lines += ["", "Not run (not in this build): " + "; ".join(f"{k}: {v}" for k, v in res["skipped"].items()) + "."]
    lines += ["", acceptance(res), "", "Reconstruction error ‖WX − ŴX‖/‖WX‖ per layer at 50 % (X: that layer's inputs "
              "in the pruned model, 32 test windows):", ""]
    rec = res["recon_50"]
    names = list(next(iter(rec.values()))) if rec else []
    spread = res["input_norm_spread"]
    agree = res.get("wanda_row_agreement", {})
    extra = " Wanda = row magnitude |" if agree else ""
    lines += ["| layer | " + " | ".join(rec) + f" | max/median ‖X_j‖ |{extra}", "|---" * (len(rec) + 2 + bool(agree)) + "|"]
    lines += [f"| {n} | " + " | ".join(f"{rec[m][n]:.3f}" for m in rec) + f" | {spread[n]:.1f} |"
              + (f" {100 * agree[n]:.1f} % |" if agree else "") for n in names]
    lines += ["", "max/median ‖X_j‖: the spread of the layer's input-column norms on the calibration windows (dense "
              "model), Wanda's factor; where it is near 1 Wanda ranks like magnitude per row."]
    if agree:
        lines[-1] += (f" Last column: the share of the layer's weights on which Wanda's 50 % mask and per-row "
                      f"magnitude's agree ({100 * min(agree.values()):.1f}–{100 * max(agree.values()):.1f} %).")
    lines += ["", f"Machine: {res['machine']}, torch {res['torch']}, {res['threads']} thread(s), under `nice -n 10`.", END]
    return "\n".join(lines)


def acceptance(res: dict) -> str:
    """Issue 12's criterion at 50 %: Wanda's and SparseGPT's perplexity increase ≤ half of layer magnitude's."""
    ppl = {r["method"]: r["test_ppl"] for r in res["rows"] if r["sparsity"] == 0.5 and r["structure"] == "weights"}
    d, mag = res["dense_test_ppl"], ppl.get("magnitude (layer)")
    if mag is None or not {"wanda", "sparsegpt"} <= set(ppl):
        return "Acceptance at 50 % (Wanda, SparseGPT ≤ half of layer magnitude's increase): not measured, a method is missing."
    inc = {m: ppl[m] - d for m in ("magnitude (layer)", "wanda", "sparsegpt")}
    ok = inc["wanda"] <= inc["magnitude (layer)"] / 2 and inc["sparsegpt"] <= inc["magnitude (layer)"] / 2
    return (f"Acceptance at 50 %: perplexity increase over dense: layer magnitude +{inc['magnitude (layer)']:.3f}, "
            f"Wanda +{inc['wanda']:.3f} ({inc['wanda'] / inc['magnitude (layer)']:.2f}×), SparseGPT +{inc['sparsegpt']:.3f} "
            f"({inc['sparsegpt'] / inc['magnitude (layer)']:.2f}×); each ≤ half: {'yes' if ok else 'no'}; "
            f"SparseGPT ≤ Wanda: {'yes' if ppl['sparsegpt'] <= ppl['wanda'] else 'no'}.")


def parser() -> argparse.ArgumentParser:
    """The options of this bench (bench/lm_depth.py adds its own to them)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="wiki-summaries", choices=["wiki-summaries", "wikitext"])
    ap.add_argument("--cache", default=str(CACHE), help="where the trained dense model is kept")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets" / "wiki-summaries"))
    ap.add_argument("--model", default="gpt-8x160")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--decay-norms-and-biases", action=argparse.BooleanOptionalAction, default=True,
                    help="weight decay on LayerNorm gains/shifts and biases too (--no-...: matrices only, as GPT-2)")
    ap.add_argument("--calib-windows", type=int, default=128)
    ap.add_argument("--eval-windows", type=int, default=1024, help="the first N windows of test and validation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-only", action="store_true", help="train and cache the dense model, then stop")
    ap.add_argument("--report-only", action="store_true", help="rewrite the RESULTS.md section from the JSON")
    return ap


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def main() -> None:
    args = parse()
    if args.train_only:
        torch.set_num_threads(args.threads)
        train, val, _ = pk.data.load(args.dataset, args.data_dir, seq_len=args.seq_len)
        print(json.dumps(train_base(args, train, val)[1], indent=1))
        return
    res = json.loads(JSON.read_text()) if args.report_only else run(args)
    JSON.write_text(json.dumps(res, indent=1))
    section = markdown(res)
    write_section(section, START, END, RESULTS)
    print(section)


if __name__ == "__main__":
    main()
