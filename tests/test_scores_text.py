"""Every data-driven score prunes a causal LM on text batches with its default loss (issue 12): the
(batch, time, vocab) logits and ignored targets are scored by the training loop's own cross-entropy."""
from __future__ import annotations

import pytest
import torch

import prunekit as pk
from prunekit.data.text import windows
from prunekit.losses import IGNORE, cross_entropy

DATA_SCORES = [n for n in pk.scores.registry.names() if pk.scores.registry.lookup(n).needs_data]


def text_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four overlapping windows of a periodic byte stream: later windows ignore the targets already scored."""
    data = windows(torch.arange(200) % 7, 16, stride=8)
    x, y = data.images[:4], data.labels[:4]
    assert (y == IGNORE).any() and (y != IGNORE).any()
    return x, y


def gpt() -> torch.nn.Module:
    torch.manual_seed(0)
    return pk.models.create("gpt-tiny", num_classes=7, input_size=16, depth=2)  # two blocks: one for skip-loss to drop


def _prune(model: torch.nn.Module, name: str, batch: tuple, **options) -> pk.Masks:
    if issubclass(pk.scores.registry.lookup(name), pk.scores.BlockScore):  # block scores rank whole blocks
        options.update(structure="blocks", example_inputs=batch[0])
    options.setdefault("data", batch)
    return pk.prune(model, 0.5, score=name, scope="layer", exclude=["head"], **options)


def test_every_data_score_is_checked():
    assert {"gradient", "taylor", "snip", "grasp", "grasp-abs", "skip-loss", "wanda", "sparsegpt"} <= set(DATA_SCORES)


@pytest.mark.parametrize("name", DATA_SCORES)
def test_data_scores_prune_a_causal_lm_on_text(name):
    """``data=`` a DataLoader of text windows, as a user would pass it."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = text_batch()
    model = gpt()
    _prune(model, name, (x, y), data=DataLoader(TensorDataset(x, y), batch_size=2))
    assert 0 < pk.sparsity(model) < 1
    assert torch.isfinite(cross_entropy(model(x), y))


@pytest.mark.parametrize("name", [n for n in DATA_SCORES if pk.scores.registry.lookup(n).needs_loss])
def test_default_loss_is_the_training_loss(name):
    """Passing the training loop's cross-entropy explicitly changes nothing: it is the default."""
    batch = text_batch()
    default, explicit = gpt(), gpt()
    _prune(default, name, batch)
    _prune(explicit, name, batch, loss_fn=cross_entropy)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))

