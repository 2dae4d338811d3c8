"""Keras 3 on MNIST: a Dense 784-300-100-10 net, dense vs 90 % weights vs 50 % units (prunekit.keras).

The Stack Overflow case the project grew from, measured: train the dense net a few epochs, then
(a) prune 90 % of the weights (global magnitude) and (b) 50 % of the hidden units (layer scope, the
output layer keeps its 10 units), each fine-tuned a short while with the masks held by
``prunekit.keras`` (no callback needed), (b) compacted into a smaller Keras model. For each: test
accuracy (official 10k test set, final weights, nothing selected on test), parameters / nonzeros,
MACs, the size of Keras' own ``.keras`` file vs prunekit's safetensors file, and ``model.predict``
latency on the 10k test images, dense and pruned timed interleaved (medians of repeats).

    KERAS_BACKEND=torch PYTHONPATH=src python bench/keras_mnist.py [--data-dir ../shared/datasets]

Writes ``bench/results/keras_mnist.json`` and its section of ``bench/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import prunekit  # noqa: E402
import prunekit.keras as pkk  # noqa: E402
from prunekit.data import load  # noqa: E402
from prunekit.sparse.inference import time_pair  # noqa: E402
from results_md import write_section as write_results_section  # bench/ is on sys.path when a bench script runs

HERE = Path(__file__).resolve().parent
START, END = "<!-- keras_mnist:start -->", "<!-- keras_mnist:end -->"


def arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    x, y = ds.batch(torch.arange(len(ds)))
    return x.reshape(len(ds), -1).numpy(), y.numpy()


def dense_net(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    L = keras.layers
    return keras.Sequential([keras.Input((784,)), L.Dense(300, activation="relu", name="fc1"),
                             L.Dense(100, activation="relu", name="fc2"), L.Dense(10, name="out")], name="lenet300")


def compiled(model: keras.Model, lr: float) -> keras.Model:
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def copy_of(model: keras.Model) -> keras.Model:
    """An uncompiled copy (``clone_model`` would also copy the compiled optimizer and its state)."""
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x, batch_size=1000, verbose=0).argmax(1) == y).mean())


def sizes(model: keras.Model, folder: Path, name: str) -> dict:
    """Keras' file as saved after fit (with the optimizer's state), without it, and prunekit's files."""
    model.save(folder / f"{name}.keras")
    copy_of(model).save(folder / f"{name}.nooptimizer.keras")  # an uncompiled copy: weights + config only
    pkk.save(model, folder / f"{name}.safetensors")
    pkk.save(model, folder / f"{name}.fp16.safetensors", fp16=True)
    size = lambda suffix: (folder / f"{name}{suffix}").stat().st_size  # noqa: E731
    return {"keras_bytes": size(".keras"), "keras_no_optimizer_bytes": size(".nooptimizer.keras"),
            "prunekit_bytes": size(".safetensors"), "prunekit_fp16_bytes": size(".fp16.safetensors")}


def counts(model: keras.Model, baseline: keras.Model | None = None) -> dict:
    s = pkk.summary(model, baseline=baseline)
    return {"params": s.params, "nonzeros": s.nonzeros, "macs": s.macs, "nonzero_macs": s.nonzero_macs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "datasets"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared 2-core machine)")
    ap.add_argument("--out", default=str(HERE / "results" / "keras_mnist.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data_dir)
    if not (root / "mnist").exists() and Path("/work/shared/datasets/mnist").exists():
        root = Path("/work/shared/datasets")
    train, _, test = load("mnist", root, val_fraction=0.0, seed=args.seed)
    (x, y), (xt, yt) = arrays(train), arrays(test)
    t0 = time.perf_counter()

    dense = compiled(dense_net(args.seed), 1e-3)
    dense.fit(x, y, epochs=args.epochs, batch_size=128, verbose=0, shuffle=True)
    rows = {"dense": {"test_acc": accuracy(dense, xt, yt), **counts(dense)}}

    weights = compiled(copy_of(dense), 1e-3)
    pkk.prune(weights, sparsity=0.9)                                  # global magnitude, exact count
    rows["weights90"] = {"test_acc_before_finetune": accuracy(weights, xt, yt)}
    weights.fit(x, y, epochs=args.finetune_epochs, batch_size=128, verbose=0, shuffle=True)
    rows["weights90"].update(test_acc=accuracy(weights, xt, yt), sparsity=pkk.sparsity(weights), **counts(weights))

    units = compiled(copy_of(dense), 1e-3)
    pkk.prune(units, sparsity=0.5, structure="units", scope="layer")  # 150 + 50 hidden units left
    rows["units50"] = {"test_acc_before_finetune": accuracy(units, xt, yt)}
    units.fit(x, y, epochs=args.finetune_epochs, batch_size=128, verbose=0, shuffle=True)
    small = pkk.compact(units)
    rows["units50"].update(test_acc=accuracy(small, xt, yt), hidden=[small.layers[0].units, small.layers[1].units],
                           **counts(small, baseline=dense))
    train_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("dense", dense), ("weights90", weights), ("units50", small)):
            rows[name].update(sizes(model, Path(tmp), name))

    def run(model):
        return lambda: model.predict(xt, batch_size=1000, verbose=0)

    for name, model in (("weights90", weights), ("units50", small)):
        d_ms, p_ms = time_pair(run(dense), run(model), args.repeats, torch.device("cpu"))
        rows[name].update(predict_ms_dense=d_ms, predict_ms=p_ms, speedup=d_ms / p_ms)

    result = {
        "rows": rows, "epochs": args.epochs, "finetune_epochs": args.finetune_epochs, "seed": args.seed,
        "repeats": args.repeats, "train_and_prune_s": train_s,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), torch threads {torch.get_num_threads()}",
        "versions": {"keras": keras.__version__, "backend": keras.backend.backend(), "torch": torch.__version__,
                     "prunekit": prunekit.__version__, "python": platform.python_version()},
        "load_avg": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    write_section(result)
    print(json.dumps(rows, indent=2))


def write_section(r: dict) -> None:
    rows, v = r["rows"], r["versions"]
    d = rows["dense"]

    def line(label: str, row: dict, lat: str) -> str:
        kb = lambda b: f"{b / 1e3:,.0f} kB"  # noqa: E731
        return (f"| {label} | {row['test_acc']:.2%} | {row['params']:,} | {row['nonzeros']:,} | {row['nonzero_macs']:,} "
                f"| {kb(row['keras_bytes'])} / {kb(row['keras_no_optimizer_bytes'])} "
                f"| {kb(row['prunekit_bytes'])} ({kb(row['prunekit_fp16_bytes'])} fp16) | {lat} |")

    w, u = rows["weights90"], rows["units50"]
    text = "\n".join([
        START,
        "## Keras 3 on MNIST: Dense 784-300-100-10, dense vs pruned (issue 16, bench/keras_mnist.py)",
        "",
        "| model | test acc | params | nonzero params | nonzero MACs | `.keras` file (after fit / without optimizer) | prunekit file | `predict` 10k (ms, vs dense) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        line("dense", d, "—"),
        line("90 % weights (masked, dense kernels)", w,
             f"{w['predict_ms']:.1f} vs {w['predict_ms_dense']:.1f} ({w['speedup']:.2f}×)"),
        line(f"50 % units → compacted {784}-{u['hidden'][0]}-{u['hidden'][1]}-10", u,
             f"{u['predict_ms']:.1f} vs {u['predict_ms_dense']:.1f} ({u['speedup']:.2f}×)"),
        "",
        f"Dense: Adam 1e-3, batch 128, {r['epochs']} epochs on the 60k training set (seed {r['seed']}). Each pruned net "
        f"starts from it, is pruned with `prunekit.keras.prune` (90 %: global magnitude over the three kernels; "
        f"50 % units: layer scope, output units kept) and fine-tuned {r['finetune_epochs']} epoch(s) (Adam 1e-3) with "
        "the masks held by prunekit's variable constraints; test accuracy right after pruning, before fine-tuning: "
        f"{w['test_acc_before_finetune']:.2%} (weights) and {u['test_acc_before_finetune']:.2%} (units). Test accuracy "
        "is the final weights on the official 10k test set (nothing selected on it). A `.keras` file saved after "
        "`fit` also holds the optimizer's state (Adam: two more copies of every weight); the second size is an "
        "uncompiled copy's, the fair comparison with prunekit's file (weights + config only). The 90 % model keeps dense "
        "kernels with zeros, so its `.keras` file and its `predict` time are those of the dense net: only "
        "prunekit's file (bitmask/CSR + kept values) is smaller. The unit-pruned net is rebuilt by "
        "`prunekit.keras.compact` as a smaller dense Keras model: its parameters, MACs, both files and its "
        "`predict` time fall. `predict` = `model.predict(x_test, batch_size=1000)` on all 10k images; dense and "
        f"pruned alternate, medians of {r['repeats']} repeats after warm-up (`prunekit.sparse.inference.time_pair`).",
        f"Machine: {r['machine']}, load average {r['load_avg']:.1f} at the end of the run (other jobs share the "
        f"cores); Keras {v['keras']} on the {v['backend']} backend, torch {v['torch']}, Python {v['python']}. "
        "Command: `KERAS_BACKEND=torch PYTHONPATH=src python bench/keras_mnist.py`; raw: `bench/results/keras_mnist.json`.",
        END,
    ])
    write_results_section(text, START, END, HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
