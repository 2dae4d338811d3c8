"""One engine for every structure: output safety, name matching, new scores and structures from outside."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch import nn

import prunekit as pk


def lenet300() -> nn.Module:
    torch.manual_seed(0)
    return pk.models.create("lenet300")


def output_layer(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def test_neuron_pruning_keeps_every_output_class_by_default():
    model = lenet300()
    pk.prune(model, sparsity=0.5, structure="neurons")
    head = output_layer(model)
    assert head.out_features == 10
    assert bool((head.weight.abs().sum(1) > 0).all()), "an output class was pruned"


def mlp(sizes=(20, 32, 16, 10), seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def dead_rows(layer: nn.Linear) -> int:
    return int((layer.weight.abs().sum(1) == 0).sum())


# -- a new score, defined here only, works for every structure ------------------------------------------


@pk.scores.register("test-last-index-first")
class IndexOrder(pk.scores.Score):
    """Scores a weight by its flat index within the scored block: low indices go first (test only)."""

    def __call__(self, weight, context):
        return torch.arange(weight.numel(), dtype=torch.float32).reshape(weight.shape)


def test_a_new_score_prunes_weights_neurons_and_channels():
    model = mlp()
    pk.prune(model, 0.5, score="test-last-index-first", scope="layer")
    w = model[0].weight_mask.flatten()
    assert not w[: w.numel() // 2].any() and w[w.numel() // 2:].all()

    model = mlp()
    pk.prune(model, 0.25, structure="neurons", score="test-last-index-first", scope="layer")
    assert model[0].weight_mask[:, 0].tolist() == [False] * 8 + [True] * 24  # rows summed: low rows first

    model, x = mlp(), torch.randn(2, 20)
    pk.prune(model, 0.25, structure="channels", score=IndexOrder(), scope="layer", example_inputs=x)
    kept = model[0].weight_mask[:, 0]
    assert int((~kept).sum()) == 8 and output_classes_kept(model)


def output_classes_kept(model: nn.Module) -> bool:
    return bool((output_layer(model).weight.abs().sum(1) > 0).all())


# -- a new structure, defined here only ---------------------------------------------------------------


@pk.structures.register("test-columns")
class Columns(pk.structures.TensorStructure):
    """Whole input columns of Linear weights (test only): the minimal per-tensor interface."""

    def rows_are_units_in_order(self, module):
        return False

    def num_units(self, module, pname):
        return getattr(module, pname).shape[1]

    def to_units(self, scores, module, reduce):
        return pk.scores.reduce_units(scores.t(), reduce)

    def unit_mask(self, mask, module):
        return mask.any(0)

    def masks(self, keep, module, pname):
        return {pname: keep[None].expand_as(getattr(module, pname)).clone()}


def test_a_new_structure_prunes_through_pk_prune():
    model = mlp()
    norms = model[0].weight.detach().norm(dim=0)
    pk.prune(model, 0.5, structure="test-columns", scope="layer")
    gone = (model[0].weight.abs().sum(0) == 0)
    assert int(gone.sum()) == 10 and norms[gone].max() <= norms[~gone].min()
    pk.prune(model, 0.6, structure="test-columns", score="random")  # global, monotone
    assert sum(int((m.weight.abs().sum(0) == 0).sum()) for m in model if isinstance(m, nn.Linear)) == round(0.6 * 68)
    assert bool((model[0].weight.abs().sum(0) == 0)[gone].all())


# -- one name matcher ----------------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def zeros(layer: nn.Linear) -> int:
    return int((layer.weight == 0).sum())


def test_a_module_name_covers_its_submodules_in_scope_and_exclude():
    model = Net()
    pk.prune(model, scope={"classifier": 0.9, "features.2.weight": 0.5})
    assert zeros(model.classifier[0]) == round(0.9 * 32 * 16) and zeros(model.classifier[2]) == round(0.9 * 160)
    assert zeros(model.features[2]) == 512 and zeros(model.features[0]) == 0
    model = Net()
    pk.prune(model, 0.8, exclude=["classifier"])
    assert zeros(model.classifier[0]) == 0 and zeros(model.classifier[2]) == 0 and zeros(model.features[0]) > 0


def test_the_most_specific_scope_key_wins():
    model = Net()
    pk.prune(model, scope={"*": 0.2, "classifier": 0.5, "classifier.2": 0.75, nn.Linear: 0.1})
    assert zeros(model.features[0]) == round(0.2 * 640)  # the glob beats the type
    assert zeros(model.classifier[0]) == round(0.5 * 512)
    assert zeros(model.classifier[2]) == round(0.75 * 160)


def test_unmatched_names_raise_with_close_matches():
    with pytest.raises(pk.UnknownNameError, match=r"'clasifier'.*close matches: classifier"):
        pk.prune(Net(), 0.5, exclude=["clasifier"])
    with pytest.raises(pk.UnknownNameError, match=r"'featurs\.0'.*features\.0"):
        pk.prune(Net(), scope={"featurs.0": 0.5})
    with pytest.raises(pk.UnknownNameError, match="'head'"):
        pk.prune(Net(), 0.5, structure="neurons", prune_outputs=["head"])
    with pytest.raises(pk.UnknownNameError, match=r"'features\.1'.*no prunable"):
        pk.prune(Net(), scope={"features.1": 0.5})  # a ReLU: a real name, but nothing to prune
    with pytest.raises(pk.UnknownNameError, match="'nope'"):
        pk.prune(Net(), 0.5, structure="channels", example_inputs=torch.randn(2, 20), exclude=["nope"])
    pk.prune(Net(), 0.5, exclude=[nn.Conv2d])  # a type that matches nothing is fine


@pytest.mark.parametrize("ratio", ["0.5", 1.0, -0.1, float("nan"), True])
def test_bad_ratios_raise(ratio):
    with pytest.raises(pk.InvalidSparsityError, match=r"\[0, 1\)"):
        pk.prune(Net(), scope={"classifier": ratio})


# -- output layers stay whole --------------------------------------------------------------------------


class HeadFirst(nn.Module):
    """Registers its output layer first: only a forward pass can tell which layer is the output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(16, 10)
        self.body = nn.Linear(20, 16)

    def forward(self, x):
        return self.head(torch.relu(self.body(x))).log_softmax(-1)


def test_outputs_are_found_by_a_forward_pass_when_inputs_are_given():
    model = HeadFirst()
    pk.prune(model, 0.5, structure="neurons", example_inputs=torch.randn(2, 20))
    assert dead_rows(model.head) == 0 and dead_rows(model.body) == 8
    model = HeadFirst()  # without inputs: the last registered layer counts as the output
    pk.prune(model, 0.5, structure="neurons")
    assert dead_rows(model.body) == 0 and dead_rows(model.head) == 5


def test_named_outputs_may_be_pruned():
    model = lenet300()
    pk.prune(model, 0.5, structure="neurons", prune_outputs=[output_name(model)], scope="layer")
    assert dead_rows(output_layer(model)) == 5


def output_name(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_channel_pruning_keeps_every_output_class(scope):
    model, x = Net(), torch.randn(2, 20)
    pk.prune(model, 0.9, structure="channels", example_inputs=x, scope=scope)
    assert output_classes_kept(model) and dead_rows(model.features[0]) > 0


# -- exact counts for every structure and scope; monotone masks across structures -------------------------


class Attention(nn.Module):
    """Hand-written 4-head self-attention plus a classifier: heads are the units of structure='heads'."""

    def __init__(self, dim: int = 32, n_head: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.n_head = n_head
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        self.q2, self.k2, self.v2, self.proj2 = (nn.Linear(dim, dim) for _ in range(4))
        self.out = nn.Linear(dim, 10)

    def attend(self, x, q, k, v, proj):
        b, t, d = x.shape
        q, k, v = (f(x).view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for f in (q, k, v))
        y = ((q @ k.transpose(-2, -1)) / 8 ** 0.5).softmax(-1) @ v
        return x + proj(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = self.attend(x, self.q, self.k, self.v, self.proj)
        return self.out(self.attend(x, self.q2, self.k2, self.v2, self.proj2))


def dead_heads(q: nn.Linear, n_head: int = 4) -> int:
    return int((q.weight.abs().reshape(n_head, -1).sum(1) == 0).sum())


CASES = {  # structure: (model, example inputs, dropped units per part, units per part)
    "neurons": (lambda: mlp(), None, lambda m: [dead_rows(m[0]), dead_rows(m[2])], [32, 16]),
    "channels": (lambda: mlp(), torch.randn(2, 20), lambda m: [dead_rows(m[0]), dead_rows(m[2])], [32, 16]),
    "heads": (Attention, torch.randn(2, 5, 32), lambda m: [dead_heads(m.q), dead_heads(m.q2)], [4, 4]),
    "test-columns": (lambda: mlp(), None, lambda m: [int((l.weight.abs().sum(0) == 0).sum()) for l in m[::2]],
                     [20, 32, 16]),
}


@pytest.mark.parametrize("structure", sorted(CASES))
@pytest.mark.parametrize("sparsity", [0.25, 0.5])
def test_exact_counts_for_every_structure_and_scope(structure, sparsity):
    build, x, dropped, sizes = CASES[structure]
    kwargs = {"example_inputs": x} if x is not None else {}
    model = build()
    pk.prune(model, sparsity, structure=structure, scope="layer", **kwargs)
    assert dropped(model) == [round(sparsity * n) for n in sizes]
    model = build()
    pk.prune(model, sparsity, structure=structure, **kwargs)
    assert sum(dropped(model)) == round(sparsity * sum(sizes))
    model = build()
    first = "0" if structure != "heads" else "q"
    pk.prune(model, structure=structure, scope={first: sparsity}, **kwargs)
    assert dropped(model) == [round(sparsity * sizes[0])] + [0] * (len(sizes) - 1)


def test_masks_stay_monotone_across_structures():
    model, x = mlp(), torch.randn(2, 20)
    steps = [dict(structure="2:4"), dict(sparsity=0.25, structure="neurons"),
             dict(sparsity=0.5, structure="channels", example_inputs=x), dict(sparsity=0.8, score="random")]
    before = None
    for kwargs in steps:
        masks = {k: v.clone() for k, v in pk.prune(model, **kwargs).items()}
        if before is not None:
            assert all(not (masks[k] & ~before[k]).any() for k in before), kwargs
            assert masks.keys() >= before.keys()
        before = masks
        if "structure" in kwargs:
            assert output_classes_kept(model)


def test_unit_only_scores_say_so_and_refuse_single_weights():
    assert pk.scores.Magnitude.ranks_weights() and not pk.scores.FPGM.ranks_weights()
    assert pk.scores.Gradient.needs_data and pk.scores.Taylor.needs_loss and not pk.scores.L1.needs_data
    with pytest.raises(pk.UnsupportedLayerError, match="fpgm.*whole units"):
        pk.prune(mlp(), 0.5, score="fpgm")
    model = mlp()
    pk.prune(model, 0.25, structure="neurons", score="fpgm", scope="layer")
    assert dead_rows(model[0]) == 8


def test_named_outputs_may_lose_channels():
    model, x = mlp(), torch.randn(2, 20)
    pk.prune(model, 0.5, structure="channels", example_inputs=x, scope="layer", prune_outputs=["4"])
    assert dead_rows(model[4]) == 5 and dead_rows(model[0]) == 16


def test_channel_ratio_keys_name_the_producing_layer():
    model, x = mlp(), torch.randn(2, 20)
    pk.prune(model, structure="channels", example_inputs=x, scope={"2": 0.5})  # 2 consumes 0's channels too
    assert dead_rows(model[2]) == 8 and dead_rows(model[0]) == 0


def test_structure_options_are_checked():
    with pytest.raises(pk.PruneError, match="takes no option round_to"):
        pk.prune(mlp(), 0.5, round_to=8)
    with pytest.raises(pk.PruneError, match="macs_reduction"):
        pk.prune(mlp(), structure="neurons", macs_reduction=2.0)
    with pytest.raises(pk.PruneError, match="own scope"):
        pk.prune(mlp(), structure="2:4", scope={"0": 0.5})
    model = mlp()
    pk.prune(model, 0.5, structure=pk.structures.Channels(round_to=4), example_inputs=torch.randn(2, 20),
             scope="layer")
    assert (32 - dead_rows(model[0])) % 4 == 0 and (16 - dead_rows(model[2])) % 4 == 0


@settings(max_examples=60, deadline=None)
@given(data=st.data(), sizes=st.lists(st.integers(1, 8), min_size=1, max_size=5))
def test_capped_global_selection_is_the_greedy_choice(data, sizes):
    """Dropping the k lowest scores with per-part caps equals taking units in (score, part, index) order."""
    scores = [torch.tensor(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=torch.float32)
              for n in sizes]
    caps = [data.draw(st.none() | st.integers(0, n)) for n in sizes]
    k = data.draw(st.integers(0, sum(sizes)))
    parts = [pk.structures.Part(f"p{i}", [], n, [], i, cap, unit_scores=lambda s=s: iter([s]))
             for i, (n, s, cap) in enumerate(zip(sizes, scores, caps))]
    keeps = pk.scope.drop_lowest(parts, k)
    expected = [torch.ones(n, dtype=torch.bool) for n in sizes]
    taken, left = [0] * len(sizes), k
    for value, i, j in sorted((float(s[j]), i, j) for i, s in enumerate(scores) for j in range(len(s))):
        if left and (caps[i] is None or taken[i] < caps[i]):
            expected[i][j], taken[i], left = False, taken[i] + 1, left - 1
    assert [k.tolist() for k in keeps] == [e.tolist() for e in expected]
