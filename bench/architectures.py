"""Which `transformers` architectures prunekit prunes, compacts and saves: a table by outcome, with timings.

Every architecture of tests/hf_models.py (built from small configs, never downloaded), with SDPA and
eager attention, pruned 50 % by heads and by channels: prune+compact time (median of ``--repeats``),
the largest compacted-vs-masked output difference over the example input, another batch, another
length, a padding mask and a KV-cache step, and whether ``pk.save_compact`` and ``pk.save_pretrained``
round-trip bit-identically. A refusal is a PruneError subclass; anything else is a bug and says "raw".

    PYTHONPATH=src /work/main/.venv/bin/python bench/architectures.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the small configs live with the tests
import hf_models as H  # noqa: E402

import prunekit as pk  # noqa: E402
from results_md import write_section  # bench/ is on sys.path when a bench script runs

RESULTS = ROOT / "bench" / "RESULTS.md"
JSON = ROOT / "bench" / "results" / "architectures.json"
START, END = "<!-- architectures:start -->", "<!-- architectures:end -->"


def _outcome(err: BaseException) -> str:
    kind = "refused" if isinstance(err, pk.PruneError) else "raw"
    return f"{kind}: {type(err).__name__}: {str(err).splitlines()[0][:160]}"


def _identical(a, b, name: str) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    same = list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    return same and all(d == 0.0 for d in H.differences(a, b, name).values())


def case(name: str, attn: str, structure: str, repeats: int) -> dict:
    row = {"architecture": name, "attention": attn, "structure": structure}
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        model = H.BUILDERS[name](attn).eval()
        x = H.example(name)
        start = time.perf_counter()
        try:
            pk.prune(model, 0.5, structure=structure, example_inputs=x)
            small = pk.compact(model, x)
        except Exception as err:  # noqa: BLE001 - the outcome is the measurement
            return {**row, "outcome": _outcome(err)}
        times.append(time.perf_counter() - start)
    row["prune_compact_s"] = statistics.median(times)
    row["params"] = [sum(p.numel() for p in m.parameters()) for m in (model, small)]
    try:
        row["max_diff"] = max(H.differences(model, small, name).values())
        row["outcome"] = "equal" if row["max_diff"] < 1e-5 else "DIFFERENT"
    except Exception as err:  # noqa: BLE001
        return {**row, "outcome": "compacted model fails: " + _outcome(err)}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            pk.save_compact(small, Path(tmp) / "pk")
            loaded = pk.load_compact(Path(tmp) / "pk").eval()  # transformers models need no factory
            row["save_compact"] = "identical" if _identical(small, loaded, name) else "DIFFERENT"
        except Exception as err:  # noqa: BLE001
            row["save_compact"] = _outcome(err)
        row["save_pretrained"] = _pretrained(name, attn, structure, Path(tmp) / "hf")
    return row


def _pretrained(name: str, attn: str, structure: str, path: Path) -> str:
    """save_pretrained → from_pretrained of the same model pruned layer by layer (equal sizes in every layer)."""
    torch.manual_seed(0)
    model, x = H.BUILDERS[name](attn).eval(), H.example(name)
    try:
        pk.prune(model, 0.5, structure=structure, example_inputs=x, scope="layer")
        small = pk.compact(model, x)
        pk.save_pretrained(small, path)
        loaded = type(small).from_pretrained(path, attn_implementation=attn).eval()
        return "identical" if _identical(small, loaded, name) else "DIFFERENT"
    except Exception as err:  # noqa: BLE001
        return _outcome(err)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        START,
        "## Hugging Face architectures: prune, compact, save (issue 13, `bench/architectures.py`)",
        "",
        f"{meta['machine']}; torch {meta['torch']}, transformers {meta['transformers']}; small random configs "
        "(1–2 layers per stack, width 32, never downloaded; see tests/hf_models.py), 50 % of heads or channels, "
        f"global magnitude. Time: prune + compact (trace, mask, rebuild, verify), median of {meta['repeats']} runs, "
        "one thread. Outcome \"equal\": compacted and masked outputs agree (max abs difference over the example input, "
        "another batch, another length or resolution, a padding mask and a decoder KV-cache step). "
        "`save_compact`: the compacted model saved and loaded with `pk.load_compact` (tied embeddings stored "
        "once, tied again). `save_pretrained`: the same model pruned with `scope=\"layer\"` (equal sizes in every "
        "layer), saved with `pk.save_pretrained` and loaded with `from_pretrained`; refused (ExportError) where the "
        "config cannot describe the compacted sizes, e.g. fewer heads where head size = hidden size / heads, or "
        "Whisper's pruned conv stem.",
        "",
        "| architecture | attention | structure | outcome | prune+compact s | params | max diff | save_compact "
        "| save_pretrained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["outcome"] != "equal", r["architecture"], r["attention"], r["structure"])):
        t = f"{r['prune_compact_s']:.2f}" if "prune_compact_s" in r else "–"
        params = f"{r['params'][0]} → {r['params'][1]}" if "params" in r else "–"
        diff = f"{r['max_diff']:.1e}" if "max_diff" in r else "–"
        cells = [r["architecture"], r["attention"], r["structure"], r["outcome"], t, params, diff,
                 r.get("save_compact", "–"), _short(r.get("save_pretrained", "–"))]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    counts: dict[str, int] = {}
    for r in rows:
        key = r["outcome"].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    lines += ["", "Outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".", END]
    return "\n".join(lines)


def _short(text: str) -> str:
    if "cannot describe" in text:
        return "refused: the config cannot describe the sizes"
    return "refused: layers differ" if "for all layers" in text else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    rows = []
    for name in H.BUILDERS:
        for attn in ("sdpa", "eager"):
            for structure in ("heads", "channels"):
                rows.append(case(name, attn, structure, args.repeats))
                print(json.dumps(rows[-1]), flush=True)
    meta = {"machine": f"2-core AMD EPYC (shared, {platform.machine()}), 1 thread", "torch": torch.__version__,
            "transformers": transformers.__version__, "repeats": args.repeats}
    JSON.parent.mkdir(parents=True, exist_ok=True)
    JSON.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_section(markdown(rows, meta), START, END, RESULTS)


if __name__ == "__main__":
    main()
