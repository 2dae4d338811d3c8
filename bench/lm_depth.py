"""Depth pruning of the byte-level GPT (issue 14): test perplexity after removing 25 % of its blocks.

For each block score (``block-influence``, ``skip-loss``, ``branch-norm``, and ``random`` over a few
seeds as the control), ``pk.prune(structure="blocks")`` drops the lowest-scored quarter of the decoder
blocks and ``pk.compact`` deletes them (the layer list shrinks); test perplexity is measured without
fine-tuning and after one short fine-tune, the same for every score (and for the dense model, as the
control of what the extra steps alone give). Reuses bench/lm.py's cached dense model, its calibration
windows and its test protocol. Writes bench/results/lm_depth.json and its section of bench/RESULTS.md.

    PYTHONPATH=src nice -n 10 python bench/lm_depth.py [--model gpt-8x160] [--ft-steps 100]
"""
from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch import nn

import lm  # bench/ is on sys.path when this script runs
import prunekit as pk
from results_md import write_section
from prunekit.data.text import calibration
from prunekit.training.evaluate import cross_entropy

JSON = lm.ROOT / "bench" / "results" / "lm_depth.json"
START, END = "<!-- lm-depth:start -->", "<!-- lm-depth:end -->"
SCORES = ("block-influence", "skip-loss", "branch-norm")


def finetune(model: nn.Module, train, args: argparse.Namespace) -> float:
    """The one short fine-tune every variant gets; returns its CPU seconds."""
    start = time.process_time()
    pk.train(model, train, None, steps=args.ft_steps, batch_size=args.batch_size, lr=args.ft_lr, optimizer="adamw",
             weight_decay=0.1, lr_schedule="cosine", warmup_steps=args.ft_steps // 10, seed=1, progress=False)
    return time.process_time() - start


def drop_blocks(dense: nn.Module, score: str, seed: int, calib, example: torch.Tensor, fraction: float
                ) -> tuple[nn.Module, list[int]]:
    """A compacted copy of ``dense`` without the ``fraction`` of its blocks ``score`` ranks lowest, and their indices."""
    from prunekit.graph.blocks import is_removed

    model = copy.deepcopy(dense)
    pk.prune(model, fraction, structure="blocks", score=score, data=calib, loss_fn=cross_entropy,
             example_inputs=example, seed=seed)
    removed = [i for i, b in enumerate(model.blocks) if is_removed(b)]
    return pk.compact(model, example), removed


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    train, val, test = pk.data.load(args.dataset, args.data_dir, seq_len=args.seq_len)
    dense, meta = lm.train_base(args, train, val)
    test = test.subset(torch.arange(min(args.eval_windows, len(test))))
    calib = calibration(train, args.calib_windows, seed=0)
    batches = [calib.batch(torch.arange(i, min(i + 16, len(calib)))) for i in range(0, len(calib), 16)]
    example = calib.images[:4]
    tuned = copy.deepcopy(dense)
    out = {"base": meta, "depth": len(dense.blocks), "fraction": args.fraction, "ft_steps": args.ft_steps,
           "ft_lr": args.ft_lr, "batch_size": args.batch_size, "calib_tokens": calib.tokens, "test_tokens": test.tokens,
           "dataset": args.dataset, "threads": args.threads, "torch": torch.__version__,
           "dense_test_ppl": lm.test_ppl(dense, test), "ft_cpu_s": finetune(tuned, train, args)}
    out["dense_ft_test_ppl"] = lm.test_ppl(tuned, test)
    print(f"dense {out['dense_test_ppl']:.3f}, dense + fine-tune {out['dense_ft_test_ppl']:.3f}", flush=True)
    tuned_by_removed: dict[tuple[int, ...], float] = {}  # the fine-tune is seeded: the same blocks give the same model
    jobs = [(s, 0) for s in SCORES] + [("random", seed) for seed in range(args.random_seeds)]
    out["rows"] = []
    for score, seed in jobs:
        start = time.process_time()
        small, removed = drop_blocks(dense, score, seed, batches, example, args.fraction)
        row = {"score": score, "seed": seed, "removed": removed, "blocks_left": len(small.blocks),
               "prune_cpu_s": time.process_time() - start, "test_ppl": lm.test_ppl(small, test)}
        if tuple(removed) not in tuned_by_removed:
            finetune(small, train, args)
            tuned_by_removed[tuple(removed)] = lm.test_ppl(small, test)
        row["ft_test_ppl"] = tuned_by_removed[tuple(removed)]
        out["rows"].append(row)
        print(f"{score:16s} seed {seed} removed {removed}: {row['test_ppl']:.3f} -> {row['ft_test_ppl']:.3f}", flush=True)
    return out


def markdown(res: dict) -> str:
    b, n = res["base"], res["depth"]
    k = n - res["rows"][0]["blocks_left"] if res["rows"] else 0
    lines = [START, "## Depth pruning of the byte-level GPT (issue 14, `bench/lm_depth.py`)", "",
             f"Model `{b['model']}` ({b['params'] / 1e6:.2f} M parameters, {n} blocks), the dense model of `bench/lm.py`. "
             f"`pk.prune(structure=\"blocks\", sparsity={res['fraction']})` removes {k} of the {n} decoder blocks by each "
             f"score, `pk.compact` deletes them (the model keeps {n - k} blocks). Scores are calibrated on "
             f"{res['calib_tokens']:,} training bytes (`skip-loss`: the loss on those windows). Test perplexity per byte "
             f"on the first {res['test_tokens']:,} test bytes, without fine-tuning and after one fine-tune of "
             f"{res['ft_steps']} AdamW steps × {res['batch_size']} windows (lr {res['ft_lr']:g}, cosine, "
             f"{res['ft_steps'] * res['batch_size'] * b['seq_len'] / 1e6:.2f} M training bytes; "
             f"{res['ft_cpu_s'] / 60:.1f} CPU-min on the dense model), the same for every row.", "",
             "| score | blocks removed | no fine-tune | fine-tuned |", "|---|---|---|---|",
             f"| dense (reference) | – | {res['dense_test_ppl']:.3f} | {res['dense_ft_test_ppl']:.3f} |"]
    for r in res["rows"]:
        name = r["score"] + (f" (seed {r['seed']})" if r["score"] == "random" else "")
        lines.append(f"| {name} | {', '.join(map(str, r['removed']))} | {r['test_ppl']:.3f} | {r['ft_test_ppl']:.3f} |")
    lines += ["", "The dense row's fine-tuned column is the dense model given the same extra steps: the part of "
              "the recovery that extra training alone gives. The fine-tune is seeded, so scores that remove the same "
              "blocks share one fine-tuned model.", "",
              f"Machine: 2-core AMD EPYC, torch {res['torch']}, {res['threads']} thread(s), under `nice -n 10`.", END]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = lm.parser()
    ap.description = __doc__.splitlines()[0]
    ap.add_argument("--fraction", type=float, default=0.25, help="the fraction of blocks removed")
    ap.add_argument("--ft-steps", type=int, default=100)
    ap.add_argument("--ft-lr", type=float, default=5e-4)
    ap.add_argument("--random-seeds", type=int, default=3)
    return ap.parse_args(argv)


def main() -> None:
    args = parse()
    res = json.loads(JSON.read_text()) if args.report_only else run(args)
    JSON.write_text(json.dumps(res, indent=1))
    write_section(markdown(res), START, END)


if __name__ == "__main__":
    main()
