"""Class 3 of issue 17: inputs that do not fit the model are caught at the boundary, naming the
argument, the layer and what it expects — never a traceback from deep inside torch."""
from __future__ import annotations

import pytest
import torch
from conftest import convnet, mlp
from torch import nn

import prunekit as pk
from prunekit.inputs import check_data, check_forward, check_module, check_seed

X_CONV = torch.randn(2, 3, 16, 16)


def pruned_convnet() -> nn.Module:
    model = convnet().eval()
    pk.prune(model, 0.5, structure="channels", example_inputs=X_CONV)
    return model


ENTRY_POINTS = {
    "summary": lambda m, x: pk.summary(m, x),
    "compact": lambda m, x: pk.compact(m, x),
    "sparsify": lambda m, x: pk.sparsify(m, x, repeats=1),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_wrong_shape_names_argument_layer_and_expectation(entry):
    with pytest.raises(pk.InvalidArgumentError) as info:
        ENTRY_POINTS[entry](pruned_convnet(), torch.randn(2, 5, 16, 16))
    msg = str(info.value)
    assert "example_inputs" in msg and "'0' (Conv2d)" in msg and "(2, 5, 16, 16)" in msg and "= 3" in msg


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_wrong_spatial_size_names_the_linear_layer(entry):
    with pytest.raises(pk.InvalidArgumentError, match=r"layer '6' \(Linear\).*last dimension = 588"):
        ENTRY_POINTS[entry](pruned_convnet(), torch.randn(2, 3, 20, 20))


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("bad", ["images.png", None, 3.0])
def test_inputs_that_are_not_tensors(entry, bad):
    with pytest.raises(pk.InvalidArgumentError, match="example_inputs must be a tensor"):
        ENTRY_POINTS[entry](mlp(), bad)


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_tensor_where_the_model_goes(entry):
    with pytest.raises(pk.InvalidArgumentError, match="model must be a torch.nn.Module, got Tensor"):
        ENTRY_POINTS[entry](torch.randn(2, 20), mlp())


def test_meta_device_model():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(pk.InvalidArgumentError, match=r"meta device \(0.weight\)"):
        pk.summary(model, torch.randn(1, 4))
    with pytest.raises(pk.InvalidArgumentError, match="meta device"):
        check_module(model)


def test_wrong_dtype_names_the_layer():
    with pytest.raises(pk.InvalidArgumentError, match=r"layer '0' \(Linear\)"):
        check_forward(mlp(), torch.ones(2, 20, dtype=torch.long))


def test_failure_inside_a_nested_block_names_the_innermost_layer():
    model = nn.Sequential(nn.Sequential(nn.Linear(8, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 2))))
    with pytest.raises(pk.InvalidArgumentError, match=r"layer '0.1.1' \(Linear\) got input \(3, 4\)"):
        check_forward(model, torch.randn(3, 8))


def test_a_failed_check_leaves_the_model_as_it_was():
    model = mlp().train()
    with pytest.raises(pk.InvalidArgumentError):
        pk.summary(model, torch.randn(2, 7))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("data, what", [
    ((torch.randn(4, 20), torch.tensor([0, 1, 2, 10])), "labels range 0..10, but the model has 10 outputs"),
    ((torch.randn(4, 20), torch.tensor([0, 1, -1, 2])), "labels range -1..2"),
    ((torch.randn(4, 20), torch.tensor([0, 1, 2])), "4 inputs but 3 labels"),
    ((torch.randn(4, 9), torch.tensor([0, 1, 2, 3])), r"data inputs of shape \(4, 9\).*layer '0' \(Linear\)"),
    (torch.randn(4, 20), "must be \\(inputs, labels\\)"),
    ([(torch.randn(4, 20),)], "pair of tensors"),
])
def test_gradient_data_that_does_not_fit(data, what):
    with pytest.raises(pk.InvalidArgumentError, match=what):
        check_data(mlp(), data)


def test_empty_data_is_missing_data():
    with pytest.raises(pk.MissingDataError, match="holds no batch"):
        check_data(mlp(), [])


def test_gradient_data_as_a_stream_is_checked_on_its_first_batch():
    batches = iter([(torch.randn(4, 20), torch.tensor([0, 1, 2, 3]))] * 2)
    check_data(mlp(), batches)  # fits: no error
    with pytest.raises(pk.InvalidArgumentError, match="labels range"):
        check_data(mlp(), [(torch.randn(2, 20), torch.tensor([0, 99]))])


@pytest.mark.parametrize("seed", [0.5, "1", True, None])
def test_non_integer_seed(seed):
    with pytest.raises(pk.InvalidArgumentError, match="seed must be an integer"):
        check_seed(seed)
    with pytest.raises(pk.InvalidArgumentError, match="seed must be an integer"):
        pk.train(mlp(), _tiny(), epochs=1, seed=seed, progress=False)


def _tiny():
    from prunekit.data import ArrayDataset

    return ArrayDataset(torch.randn(8, 20), torch.arange(8) % 10)


def test_valid_inputs_still_pass():
    model = pruned_convnet()
    assert pk.summary(model, X_CONV).params > 0
    assert pk.compact(model, (X_CONV,)) is not None
    check_data(mlp(), (torch.randn(4, 20), torch.tensor([0, 1, 2, 9])))


# -- class 4 (the parts outside names.py): ties across exclude, parametrized weights -------------------------
def tied() -> nn.Module:
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))
    model[2].weight = model[0].weight
    return model


def test_weight_tied_between_excluded_and_included_layer():
    with pytest.raises(pk.InvalidArgumentError, match=r"'2' \(excluded\) is tied to '0' \(pruned\)"):
        pk.prune(tied(), 0.5, exclude=["2"])
    assert pk.prune(tied(), 0.5, exclude=[]).sparsity == pytest.approx(0.5)  # neither excluded: pruned together
    with pytest.raises(pk.NoPrunableLayersError):
        pk.prune(tied(), 0.5, exclude=["0", "2"])  # both excluded: nothing left, said as such


def test_parametrized_weight_is_named():
    model = nn.Sequential(nn.Linear(4, 4), nn.utils.parametrizations.orthogonal(nn.Linear(4, 4)))
    with pytest.warns(UserWarning, match=r"layer '1': its weight is kept dense because its parametrization"):
        assert pk.prune(model, 0.5).sparsity == pytest.approx(0.5)  # layer '0' pruned, layer '1' locked
    with pytest.warns(UserWarning, match="kept dense"):
        assert pk.sparsity(model) < 0.5  # never reports a target reached while a layer was skipped
    assert pk.prune(mlp(), 0.5).sparsity == pytest.approx(0.5)


def test_a_list_is_one_input_as_everywhere_else():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, xs):
            return self.fc(xs[0] + xs[1])

    assert pk.summary(Pair(), [torch.randn(1, 4), torch.randn(1, 4)]).macs == 8
