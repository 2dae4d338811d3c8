"""LSTM / GRU / RNN weights and MultiheadAttention's in_proj_weight are pruned like any Linear weight."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import prunekit as pk


class Recurrent(nn.Module):
    """A two-layer bidirectional recurrent classifier over (batch, steps, 8) inputs."""

    def __init__(self, cell: type = nn.LSTM):
        super().__init__()
        self.rnn = cell(8, 16, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out.mean(1))


class Encoder(nn.Module):
    """A two-layer Transformer encoder classifier over (batch, tokens, 64) inputs."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.encoder(x).mean(1))


CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
MODELS = {**{k: (lambda c=c: Recurrent(c)) for k, c in CELLS.items()}, "mha": Encoder}
INPUTS = {"lstm": (3, 5, 8), "gru": (3, 5, 8), "rnn": (3, 5, 8), "mha": (3, 6, 64)}


def build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS[kind]()


def special(model: nn.Module) -> dict[str, torch.Tensor]:
    """The recurrent and in_proj weights of ``model`` by qualified name."""
    return {n: p for n, p in model.named_parameters() if ".weight_" in n or n.endswith("in_proj_weight")}


def test_recurrent_and_attention_weights_are_prunable_by_default():
    names = {t.qname for t in pk.prunable(build("lstm"))}
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1_reverse", "rnn.weight_hh_l1_reverse"} <= names
    assert not any("bias" in n for n in names)
    names = {t.qname for t in pk.prunable(build("mha"))}
    assert {"encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.1.self_attn.in_proj_weight"} <= names
    assert "encoder.layers.0.self_attn.out_proj.weight" in names
    assert "rnn.weight_ih_l0" not in {t.qname for t in pk.prunable(build("lstm"), exclude=["rnn"])}
    kept = {t.qname for t in pk.prunable(build("lstm"), exclude=["rnn.weight_hh_l0"])}
    assert "rnn.weight_hh_l0" not in kept and "rnn.weight_ih_l0" in kept
    masks = pk.prune(build("lstm"), scope={"rnn.weight_ih_l0": 0.5, "head": 0.25})
    assert masks["rnn.weight_ih_l0"].float().mean() == 0.5 and masks["head.weight"].float().mean() == 0.75
    assert masks["rnn.weight_hh_l0"].all()


def test_separate_qkv_projections_are_prunable():
    mha = nn.MultiheadAttention(16, 2, kdim=8, vdim=12)
    names = {t.qname for t in pk.prunable(mha)}
    assert {"q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"} == names


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_exact_sparsity(kind, scope):
    model = build(kind)
    sizes = [t.param.numel() for t in pk.prunable(model)]
    masks = pk.prune(model, 0.7, scope=scope)
    pruned = round(0.7 * sum(sizes)) if scope == "global" else sum(round(0.7 * n) for n in sizes)
    assert masks.sparsity == pytest.approx(pruned / sum(sizes), abs=1e-12)
    assert pk.sparsity(model) == pytest.approx(pruned / sum(sizes), abs=1e-12)
    assert set(special(model)) <= set(masks)
    for name, p in special(model).items():
        assert torch.equal(p != 0, masks[name]) or not bool((p[masks[name].logical_not()] != 0).any())


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_n_m_blocks_run_along_the_input_axis(kind):
    model = build(kind)
    masks = pk.prune(model, structure="2:4")
    for name, p in special(model).items():
        blocks = masks[name].reshape(p.shape[0], -1, 4)
        assert bool((blocks.sum(-1) == 2).all()), name


def _train(model: nn.Module, kind: str, opt: torch.optim.Optimizer, steps: int = 15) -> None:
    torch.manual_seed(1)
    model.train()
    for _ in range(steps):
        x, y = torch.randn(INPUTS[kind]), torch.randint(0, 4, (INPUTS[kind][0],))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_masks_hold_through_training(kind, optimizer):
    model = build(kind)
    make = {"adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
            "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)}[optimizer]
    opt = make(model.parameters())
    _train(model, kind, opt, steps=2)  # optimizer state exists for weights about to be pruned
    masks = pk.prune(model, 0.8, scope="layer")
    before = {n: p.detach().clone() for n, p in special(model).items()}
    _train(model, kind, opt)
    for name, p in special(model).items():
        assert not bool(p[masks[name].logical_not()].any()), name
        assert not torch.equal(p, before[name]), f"{name} did not train"
    if kind != "mha":  # the RNN runs the very tensors that were zeroed
        rnn = model.rnn
        for name, w in zip(rnn._flat_weights_names, rnn._flat_weights):
            assert w is getattr(rnn, name)


@pytest.mark.parametrize("kind", ["lstm", "mha"])
def test_masks_hold_on_a_deep_copy(kind):
    model = build(kind)
    pk.prune(model, 0.8, scope="layer")
    twin = copy.deepcopy(model)  # the RNN rebuilds _flat_weights from the copied parameters
    masks = pk.Masks.from_model(twin).apply(twin)
    _train(twin, kind, torch.optim.Adam(twin.parameters(), lr=1e-2))
    for name, p in special(twin).items():
        assert not bool(p[masks[name].logical_not()].any()), name


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_save_load_round_trip(tmp_path, kind):
    model = build(kind)
    pk.prune(model, 0.9, scope="layer")
    pk.save(model, tmp_path / "m.safetensors")
    fresh = build(kind)
    pk.load(tmp_path / "m.safetensors", fresh)
    x = torch.randn(INPUTS[kind])
    model.eval(), fresh.eval()
    assert torch.equal(model(x), fresh(x))
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k
    _train(fresh, kind, torch.optim.Adam(fresh.parameters(), lr=1e-2), steps=3)
    masks = pk.Masks.from_model(model)
    for name, p in special(fresh).items():
        assert not bool(p[masks[name].logical_not()].any()), name


def test_sparse_encoder_file_is_small(tmp_path):
    """The issue's case: a 90 %-sparse encoder whose file was capped at 0.35 of dense by dense in_proj."""
    model = build("mha")
    pk.prune(model, 0.9, scope="layer")
    pk.save(model, tmp_path / "m.safetensors")
    dense = sum(v.numel() * v.element_size() for v in model.state_dict().values() if v.dtype != torch.bool)
    assert (tmp_path / "m.safetensors").stat().st_size / dense < 0.2


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_summary_counts_recurrent_macs_per_step_times_steps(kind):
    model = build(kind)
    pk.prune(model, 0.75, scope="layer")
    batch, steps, _ = INPUTS[kind]
    s = pk.summary(model, torch.randn(INPUTS[kind]))
    rnn = {l.name: l for l in s.layers}["rnn"]
    weights = [p for n, p in model.rnn.named_parameters() if n.startswith("weight_")]
    assert rnn.macs == batch * steps * sum(w.numel() for w in weights)
    assert rnn.nonzero_macs == batch * steps * sum(int(w.count_nonzero()) for w in weights)
    assert rnn.params == sum(p.numel() for p in model.rnn.parameters())
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(3, 5, 8), [5, 3, 2], batch_first=True)
    s = pk.summary(model.rnn, (packed,))  # a PackedSequence is a tuple: wrap it as the one input
    assert s.macs == 10 * sum(w.numel() for w in weights)  # 5 + 3 + 2 real steps, padding not counted


def test_summary_counts_attention_projections():
    model = build("mha")
    pk.prune(model, 0.75, scope="layer")
    batch, tokens, width = INPUTS["mha"]
    s = pk.summary(model, torch.randn(INPUTS["mha"]))
    layers = {l.name: l for l in s.layers}
    attn = model.encoder.layers[0].self_attn
    mha = layers["encoder.layers.0.self_attn"]
    assert mha.macs == batch * tokens * attn.in_proj_weight.numel()
    assert mha.nonzero_macs == batch * tokens * int(attn.in_proj_weight.count_nonzero())
    out = layers["encoder.layers.0.self_attn.out_proj"]
    assert out.macs == batch * tokens * width * width
    assert out.nonzero_macs == batch * tokens * int(attn.out_proj.weight.count_nonzero())
    # cross-attention: keys and values of another length
    cross = nn.MultiheadAttention(16, 2, batch_first=True)
    q, kv = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    s = pk.summary(cross, (q, kv, kv))
    assert {l.name: l for l in s.layers}[""].macs == 2 * 16 * 16 * (3 + 7 + 7)


@pytest.mark.parametrize("kind", ["lstm", "mha"])
def test_sparsify_states_why_these_stay_dense(kind):
    model = build(kind)
    pk.prune(model, 0.9, scope="layer")
    fast = pk.sparsify(model, torch.randn(INPUTS[kind]), repeats=2)
    plan = {c.name: c for c in fast.sparsify_plan}
    name = "rnn" if kind == "lstm" else "encoder.layers.0.self_attn"
    assert plan[name].choice == "dense" and "no sparse kernel" in plan[name].reason
    x = torch.randn(INPUTS[kind])
    model.eval()
    assert torch.allclose(fast(x), model(x), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_compact_and_neurons_raise_no_raw_torch_error(kind):
    model = build(kind)
    pk.prune(model, 0.5, scope="layer")
    x = torch.randn(INPUTS[kind])
    try:
        small = pk.compact(model, x)
    except pk.PruneError:
        pass
    else:
        model.eval(), small.eval()
        assert torch.allclose(small(x), model(x), atol=1e-5)
    model = build(kind)
    masks = pk.prune(model, 0.5, structure="neurons", example_inputs=x, prune_outputs=True,
                     allow_collapse=True)  # the tiny head may lose every output: not the point here
    assert masks and not set(special(model)) & set(masks)  # neurons are Linear/conv units only


def test_attention_rebuilt_by_head_compaction_stays_prunable_and_counted():
    model = build("mha").eval()
    x = torch.randn(INPUTS["mha"])
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    small = pk.compact(model, x)
    attn = small.encoder.layers[0].self_attn
    assert "encoder.layers.0.self_attn.in_proj_weight" in pk.prune(small, 0.5)
    s = {l.name: l for l in pk.summary(small, x).layers}
    batch, tokens, _ = INPUTS["mha"]
    assert s["encoder.layers.0.self_attn"].nonzero_macs == batch * tokens * int(attn.in_proj_weight.count_nonzero())


def test_summary_counts_projected_lstm_on_an_unbatched_sequence():
    lstm = nn.LSTM(8, 16, proj_size=4)
    pk.prune(lstm, 0.5, scope="layer")
    s = pk.summary(lstm, torch.randn(5, 8))  # 5 steps, no batch dimension
    weights = [p for n, p in lstm.named_parameters() if n.startswith("weight_")]
    assert {n for n, _ in lstm.named_parameters() if n.startswith("weight_")} == {"weight_ih_l0", "weight_hh_l0", "weight_hr_l0"}
    assert s.macs == 5 * sum(w.numel() for w in weights)
    assert s.nonzero_macs == 5 * sum(int(w.count_nonzero()) for w in weights)
