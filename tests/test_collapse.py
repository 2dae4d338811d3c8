"""Layer collapse is never silent: a prune that would empty a whole layer raises, naming it."""
import pytest
import torch
from torch import nn

import prunekit as pk


def wide_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))


def test_fresh_wide_mlp_at_95_percent_global_magnitude_would_lose_two_layers():
    """The reported failure: the 2048-fan-in layers start with smaller weights and all fall below the threshold."""
    model = wide_mlp()
    pk.prune(model, sparsity=0.95, allow_collapse=True)
    emptied = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and not m.weight.any()]
    assert emptied == ["2", "4"]
    x = torch.randn(4, 784)
    out = model(x)
    assert torch.allclose(out, out[:1].expand_as(out))  # the output no longer depends on the input


def test_collapse_raises_by_default_naming_the_layers_and_leaves_the_model_untouched():
    model = wide_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(pk.LayerCollapseError, match=r"2\.weight, 4\.weight.*allow_collapse=True") as err:
        pk.prune(model, sparsity=0.95)
    assert err.value.layers == ["2.weight", "4.weight"]
    assert isinstance(err.value, pk.PruneError)
    assert model.state_dict().keys() == before.keys()  # no mask attached
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_prune_that_keeps_every_layer_does_not_raise():
    model = wide_mlp()
    pk.prune(model, sparsity=0.8)
    assert all(m.weight.any() for m in model.modules() if isinstance(m, nn.Linear))


def test_layer_scope_never_collapses_at_the_same_sparsity():
    model = wide_mlp()
    pk.prune(model, sparsity=0.95, scope="layer")
    assert all(m.weight.any() for m in model.modules() if isinstance(m, nn.Linear))


def test_collapse_through_earlier_masks_is_caught_too():
    """A layer emptied by an allowed prune counts again at the next prune: it is still collapsed."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight.mul_(1e-3)
    pk.prune(model, sparsity=0.5, allow_collapse=True)
    assert not model[2].weight.any()
    with pytest.raises(pk.LayerCollapseError, match=r"2\.weight"):
        pk.prune(model, sparsity=0.6)


def test_whole_neuron_layers_are_checked_as_well():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight.mul_(1e-3)
    with pytest.raises(pk.LayerCollapseError, match=r"2\.weight"):
        pk.prune(model, sparsity=0.5, structure="neurons")


def test_a_collapsing_sweep_run_is_recorded_as_failed_and_allow_collapse_runs_it(tmp_path):
    """The harness: a run whose pruning empties a layer fails with the layers named; the sweep goes on.

    Same model, data and compression: iterative SynFlow keeps every layer where global magnitude collapses.
    """
    from prunekit.bench import ExperimentConfig, Store, sweep

    cfg = ExperimentConfig.model_validate({
        "name": "collapse", "datasets": ["synthetic"], "models": ["mlp"], "compressions": [2.0, 40.0], "seeds": [0],
        "methods": ["global-magnitude", {"name": "allowed", "score": "magnitude", "allow_collapse": True},
                    {"name": "synflow", "score": "synflow"}],
        "train": {"epochs": 1, "batch_size": 100, "lr": 0.01}, "finetune": {"steps": 1, "batch_size": 100},
        "measure": {"batch_sizes": [1], "repeats": 1, "warmup": 0}})
    outcome = sweep(cfg, tmp_path)
    assert outcome.done == 5 and len(outcome.failed) == 1
    (_, reason), = outcome.failed
    assert reason.startswith("LayerCollapseError") and "allow_collapse" in reason
    with Store(tmp_path) as store:
        done = {(r["method"], r["compression"]) for r in store.runs("done")}
    assert ("allowed", 40.0) in done and ("global-magnitude", 2.0) in done
    assert ("synflow", 40.0) in done  # the harness hands SynFlow its example inputs; 100 rounds keep every layer
