"""Constructs from third-party models (issue 13, items 3-5): does channel/head pruning compact them?

Each hand-built construct (tests/construct_models.py) and each `transformers` model built from a small
config is pruned at 50 % (heads, then channels, each on a fresh model) and compacted; the outcome is
"equal" (compacted outputs equal the masked model's within 1e-5), "refused" (a PruneError, named) or
"raw error" (anything else). Time: one prune + compact, wall clock, one thread. Run it once per
checkout to compare (the label is the commit of the prunekit it imports):

    PYTHONPATH=src /work/main/.venv/bin/python bench/constructs.py
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import construct_models as cm  # noqa: E402

import prunekit as pk  # noqa: E402
from results_md import write_section  # bench/ is on sys.path when a bench script runs

RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- constructs:start -->", "<!-- constructs:end -->"


def hf(name: str):
    import transformers as T

    ids = torch.randint(0, 64, (2, 8))
    if name == "GPT-2":
        return T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=64, n_positions=32,
                                              use_cache=False)), (ids,)
    if name == "BERT":
        return T.BertForSequenceClassification(T.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                            num_attention_heads=4, intermediate_size=48,
                                                            max_position_embeddings=32)), (ids,)
    if name == "ViT":
        return T.ViTForImageClassification(T.ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2,
                                                       num_attention_heads=4, intermediate_size=48, num_labels=3)), \
            (torch.randn(2, 3, 16, 16),)
    if name == "BART":
        return T.BartForConditionalGeneration(T.BartConfig(
            vocab_size=64, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=32,
            use_cache=False)), (ids,)
    if name == "T5":
        return T.T5ForConditionalGeneration(T.T5Config(
            vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
            relative_attention_num_buckets=8, use_cache=False)), (ids, None, torch.randint(0, 64, (2, 5)))
    raise KeyError(name)


CASES = {
    "attn_dim attribute (timm)": lambda: (cm.Encoder(cm.WidthAttrAttention), (cm.tokens(2, 6),)),
    "all_head_size, head-first chunk": lambda: (cm.Encoder(cm.HeadFirstAttention), (cm.tokens(2, 6),)),
    "inner_dim = heads * dim_head": lambda: (cm.Encoder(cm.InnerDimAttention), (cm.tokens(2, 6),)),
    "reshape(B, N, C) from the input": lambda: (cm.Encoder(cm.CaiTStyleAttention), (cm.tokens(2, 6),)),
    "Swin v1 bias table[index]": lambda: (cm.SwinStage(False), (torch.randn(2, 3, 16, 16),)),
    "Swin v2 bias MLP": lambda: (cm.SwinStage(True), (torch.randn(2, 3, 16, 16),)),
    "talking heads": lambda: (cm.Encoder(cm.TalkingHeadsAttention), (cm.tokens(2, 6),)),
    "T5-style shared SDPA attn_mask": lambda: (cm.T5Like(), (torch.randint(0, 50, (2, 7)),)),
    "split(self.chs // 2)": lambda: (cm.SplitByAttr(), (torch.randn(2, 3, 8, 8),)),
    "view_as / reshape_as / expand_as": lambda: (cm.ShapeAs(), (torch.randn(2, 3, 8, 8),)),
    "channel shuffle (plain convs)": lambda: (cm.PlainShuffle(), (torch.randn(2, 3, 8, 8),)),
    "channel shuffle (grouped convs)": lambda: (cm.ChannelShuffle(), (torch.randn(2, 3, 8, 8),)),
    "ShuffleNetV2 units": lambda: (cm.shufflenet_v2(), (torch.randn(2, 3, 8, 8),)),
    **{f"transformers {n}": (lambda n=n: hf(n)) for n in ("GPT-2", "BERT", "ViT", "BART", "T5")},
}


CONVOLUTIONAL = {"split(self.chs // 2)", "view_as / reshape_as / expand_as", "channel shuffle (plain convs)",
                 "channel shuffle (grouped convs)", "ShuffleNetV2 units"}  # no heads: channels only


def structures(case: str) -> tuple[str, ...]:
    return ("channels",) if case in CONVOLUTIONAL else ("heads", "channels")


def run(make, structure: str) -> dict:
    torch.manual_seed(0)
    model, x = make()
    model.eval()
    t0 = time.perf_counter()
    try:
        pk.prune(model, 0.5, structure=structure, example_inputs=x)
        small = pk.compact(model, x)
    except pk.PruneError as err:
        return {"outcome": "refused", "why": f"{type(err).__name__}: {str(err)[:160]}"}
    except Exception as err:  # what the issue asks never to happen
        return {"outcome": "raw error", "why": f"{type(err).__name__}: {str(err)[:160]}"}
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        a, b = small(*x), model(*x)
    a, b = (a.logits, b.logits) if hasattr(a, "logits") else (a, b)
    equal = torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    kept = sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in model.parameters())
    return {"outcome": "equal" if equal else "DIFFERENT", "seconds": round(seconds, 2), "params_kept": round(kept, 3)}


def label() -> str:
    src = Path(pk.__file__).resolve().parents[2]
    out = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"{src.name}@{out.stdout.strip() or '?'}"


def cell(r: dict) -> str:
    if r["outcome"] in ("equal", "DIFFERENT"):
        return f"{r['outcome']}, {r['params_kept']:.2f} params, {r['seconds']:.2f} s"
    return f"{r['outcome']} ({r['why'].split(':')[0]})"


def section(runs: dict[str, dict]) -> str:
    labels = sorted(runs, reverse=True)  # main@… before the branch being measured
    lines = [START, "## Constructs from third-party models (issue 13 items 3-5, `bench/constructs.py`)", "",
             "50 % heads / channels, prune + compact, one run each (one thread, 2-core AMD EPYC, torch "
             f"{torch.__version__}). \"equal\": compacted outputs equal the masked model's (1e-5); params: "
             "fraction kept; \"refused\": a PruneError (on main the CompactionErrors say only that the forward "
             "\"likely hard-codes a channel or head count\"; on this branch they name the op, layer, dimension "
             "and sizes).", "",
             "| construct | structure | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for case in CASES:
        for structure in structures(case):
            cells = [cell(runs[l][case][structure]) if structure in runs[l].get(case, {}) else "" for l in labels]
            lines.append(f"| {case} | {structure} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", END])


def main() -> None:
    torch.set_num_threads(1)
    results = {case: {s: run(make, s) for s in structures(case)} for case, make in CASES.items()}
    for case, rs in results.items():
        print(case, {s: cell(r) for s, r in rs.items()}, flush=True)
    store = ROOT / "bench" / "results" / "constructs.json"
    runs = json.loads(store.read_text()) if store.exists() else {}
    runs[label()] = results
    runs = {k: v for k, v in runs.items() if isinstance(v, dict) and "machine" not in k}
    store.write_text(json.dumps(runs, indent=1) + "\n")
    write_section(section(runs), START, END, RESULTS)
    print(platform.processor() or platform.machine())


if __name__ == "__main__":
    main()
