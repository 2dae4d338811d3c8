"""Pruning quality on real MNIST / Fashion-MNIST (CPU): LeNet-300-100 and LeNet-5.

Parts (each per seed, results cached in bench/results/quality_mnist.json so a rerun skips them):
  lenet300  dense, then a chain of gradual (Zhu & Gupta) cycles to 10×, 20×, 50×: each cycle prunes
            from the current sparsity to the next target over its first half, LR 0.1 cosine (LR rewinding)
  baselines the five ShrinkBench baselines, one-shot from the same dense net + fine-tune, at 2…32×
  lenet5    LeNet-5 (Caffe) on MNIST and Fashion-MNIST: dense, then 10× → 20× chain
  lottery   iterative magnitude pruning with rewinding to init (k = 0) vs random re-init, same masks
Test error is reported for the final weights of every stage; nothing is selected on test.

    PYTHONPATH=src python bench/quality_mnist.py --parts lenet300 baselines lottery --seeds 0 1 2
    PYTHONPATH=src python bench/quality_mnist.py --parts lenet5 --seeds 0 1 2 \
        --out bench/results/quality_mnist_lenet5.json          # (run beside the first: 2 processes)
    PYTHONPATH=src python bench/quality_mnist.py --report bench/results/quality_mnist*.json  # → RESULTS.md
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

import prunekit as pk
from prunekit.training.schedules import compression_of
from results_md import write_section  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "bench" / "results" / "quality_mnist.json"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- quality_mnist:start -->", "<!-- quality_mnist:end -->"
SGD = dict(batch_size=128, optimizer="sgd", momentum=0.9, weight_decay=1e-4, lr_schedule="cosine", progress=False)
CFG = {
    "lenet300": dict(dense_epochs=12, lr=0.1, ft_epochs=12, ft_lr=0.1, chain=[10, 20, 50], gradual=True),
    "baselines": dict(ft_epochs=2, ft_lr=0.02, ratios=[2, 4, 8, 16, 32],
                      methods=["global-magnitude", "layer-magnitude", "global-gradient", "layer-gradient", "random"]),
    "lenet5": dict(dense_epochs=3, lr=0.01, ft_epochs=2, ft_lr=0.005, chain=[10, 20], gradual=False),
    "lottery": dict(epochs=4, lr=1.2e-3, remaining=[0.2, 0.1, 0.05, 0.02]),
}


def test_error(model, test) -> float:
    return 1 - pk.evaluate(model, test)["top1"]


def stage(model, test, start) -> dict:
    return {"test_error": test_error(model, test), "compression": compression_of(model),
            "sparsity": pk.sparsity(model), "cpu_s": time.process_time() - start}


def chain(name, seed, splits, c, out, prefix="", dense_cache=None) -> None:
    """Train ``name`` dense, then prune to each compression of ``c["chain"]`` in turn, fine-tuning each."""
    train, val, test = splits
    t = time.process_time()
    torch.manual_seed(seed)
    model = pk.models.create(name)
    pk.train(model, train, val, epochs=c["dense_epochs"], lr=c["lr"], seed=seed, **SGD)
    if dense_cache is not None:
        dense_cache[seed] = copy.deepcopy(model.state_dict())
    out[f"{prefix}dense"] = stage(model, test, t)
    for ratio in c["chain"]:
        t = time.process_time()
        if c["gradual"]:
            every = pk.data.num_batches(train, SGD["batch_size"]) // 2
            sched = pk.schedules.gradual(compression=ratio, start=0, every=every, n=c["ft_epochs"],
                                         initial=pk.sparsity(model), method="global-magnitude")
            pk.schedules.run(model, sched, train, val, epochs=c["ft_epochs"], pretrained=True, lr=c["ft_lr"],
                             seed=seed + ratio, **SGD)
        else:
            pk.prune(model, compression=ratio, method="global-magnitude")
            pk.train(model, train, val, epochs=c["ft_epochs"], lr=c["ft_lr"], seed=seed + ratio, **SGD)
        out[f"{prefix}{ratio}x"] = stage(model, test, t)


def lenet300(seed, data, dense_cache) -> dict:
    out: dict = {}
    chain("lenet300", seed, data["mnist"], CFG["lenet300"], out, dense_cache=dense_cache)
    return out


def baselines(seed, data, dense_cache) -> dict:
    c = CFG["baselines"]
    train, val, test = data["mnist"]
    if seed not in dense_cache:
        raise SystemExit("baselines need the dense net of part lenet300 in the same run")
    gen = torch.Generator().manual_seed(seed)
    batches = [b for _, b in zip(range(4), pk.data.batches(train, 128, shuffle=True, generator=gen))]
    out = {}
    for method in c["methods"]:
        for ratio in c["ratios"]:
            t = time.process_time()
            model = pk.models.create("lenet300")
            model.load_state_dict(dense_cache[seed])
            pk.prune(model, compression=ratio, method=method, data=batches, seed=seed)
            before = test_error(model, test)
            pk.train(model, train, val, epochs=c["ft_epochs"], lr=c["ft_lr"], seed=seed, **SGD)
            out[f"{method}/{ratio}x"] = {**stage(model, test, t), "error_before_ft": before}
    return out


def lenet5(seed, data, dense_cache) -> dict:
    out: dict = {}
    for name in ("mnist", "fashion-mnist"):
        chain("lenet5", seed, data[name], CFG["lenet5"], out, prefix=f"{name}/")
    return out


def lottery(seed, data, dense_cache) -> dict:
    c = CFG["lottery"]
    train, val, test = data["mnist"]
    opts = dict(SGD, optimizer="adam", weight_decay=0.0, lr_schedule="constant", lr=c["lr"])
    t = time.process_time()
    torch.manual_seed(seed)
    model = pk.models.create("lenet300")
    snap = pk.rewind.Snapshot(0)
    pk.train(model, train, val, epochs=c["epochs"], seed=seed, callbacks=[snap], **opts)
    out = {"dense": stage(model, test, t)}
    for remaining in c["remaining"]:
        t = time.process_time()
        pk.prune(model, sparsity=1 - remaining, method="global-magnitude")  # IMP: prune the trained ticket
        pk.finetune(model, "rewind", train, val, epochs=c["epochs"], rewind_state=snap.state, seed=seed, **opts)
        out[f"ticket/{remaining}"] = stage(model, test, t)
        for variant in ("reinit", "random-mask"):
            t = time.process_time()
            control = pk.models.create("lenet300")
            pk.Masks.from_model(model).apply(control)
            pk.finetune(control, variant, train, val, epochs=c["epochs"], rewind_state=snap.state,
                        seed=1000 + seed, **opts)
            out[f"{variant}/{remaining}"] = stage(control, test, t)
    return out


PARTS = {"lenet300": lenet300, "baselines": baselines, "lenet5": lenet5, "lottery": lottery}


def _ms(values: list[float], scale: float = 100) -> str:
    v = [x * scale for x in values]
    return f"{v[0]:.2f}" if len(v) == 1 else f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}"


def report(results: dict) -> str:
    """Markdown tables: test error (%) mean ± std over the seeds present, and CPU time per part."""
    lines = []
    for part, runs in sorted(results["parts"].items()):
        seeds = sorted(runs, key=int)
        keys = list(runs[seeds[0]]["stages"])
        cpu = [runs[s]["cpu_s"] for s in seeds]
        lines += [f"\n#### {part} (seeds {', '.join(seeds)}; CPU {statistics.mean(cpu):.0f} s per seed)\n",
                  "| stage | compression | sparsity | test error % |" + (" before fine-tune % |" if part == "baselines" else ""),
                  "|---|---:|---:|---:|" + ("---:|" if part == "baselines" else "")]
        for k in keys:
            rows = [runs[s]["stages"][k] for s in seeds if k in runs[s]["stages"]]
            line = (f"| {k} | {statistics.mean(r['compression'] for r in rows):.1f}× | "
                    f"{statistics.mean(r['sparsity'] for r in rows):.4f} | {_ms([r['test_error'] for r in rows])} |")
            if part == "baselines":
                line += f" {_ms([r['error_before_ft'] for r in rows])} |"
            lines.append(line)
    return "\n".join(lines) + "\n"


def write_markdown(table: str) -> None:
    """Put ``table`` between this script's markers in bench/RESULTS.md (appending them if absent)."""
    write_section(f"{START}\n{table}{END}", START, END, RESULTS_MD,
                  heading="## Pruning quality on MNIST (bench/quality_mnist.py)\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT, help="results JSON (runs already in it are skipped)")
    ap.add_argument("--report", type=Path, nargs="*", help="only merge these results files into a report")
    args = ap.parse_args()
    if args.report:
        merged: dict = {"parts": {}}
        for f in args.report:
            for part, runs in json.loads(f.read_text())["parts"].items():
                merged["parts"].setdefault(part, {}).update(runs)
        print(report(merged))
        write_markdown(report(merged))
        return
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"parts": {}}
    data = {n: pk.data.load(n, args.data_dir, val_fraction=1 / 12, seed=0) for n in ("mnist", "fashion-mnist")}
    dense_cache: dict[int, dict] = {}
    for seed in args.seeds:
        for part in args.parts:
            done = results["parts"].get(part, {}).get(str(seed))
            if done and not (part == "lenet300" and "baselines" in args.parts
                             and str(seed) not in results["parts"].get("baselines", {})):
                continue
            start = time.process_time()
            stages = PARTS[part](seed, data, dense_cache)
            results["parts"].setdefault(part, {})[str(seed)] = {"stages": stages, "cpu_s": time.process_time() - start}
            results["meta"] = {"torch": torch.__version__, "threads": args.threads, "config": CFG,
                               "machine": "2 CPU cores shared with other agents' work"}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))
            print(f"seed {seed} {part}: {time.process_time() - start:.0f} s CPU", flush=True)
    print(report(results))


if __name__ == "__main__":
    main()
