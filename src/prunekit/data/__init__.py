"""Datasets: ``load(name, root)`` → ``(train, val, test)``; validation is carved from training data."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import DataFileError, UnknownNameError
from .base import ArrayDataset, batches, num_batches, split
from .builtin import digits, synthetic
from .cifar import load_cifar10
from .custom import is_custom, load_custom
from .idx import load_idx_set
from .text import TextWindows, load_text, read_wiki_summaries, read_wikitext

_LOADERS: dict[str, tuple[Callable[..., tuple], bool]] = {}  # name -> (loader, needs root)
_OWN_SPLIT: set[str] = set()  # datasets whose files fix the validation split (text corpora)


def _register(name: str, needs_root: bool = False, own_split: bool = False):
    def deco(fn):
        _LOADERS[name] = (fn, needs_root)
        if own_split:
            _OWN_SPLIT.add(name)
        return fn

    return deco


@_register("digits")
def _digits(root, seed, **kw):
    return (*digits(**kw), None)


@_register("synthetic")
def _synthetic(root, seed, **kw):
    return (*synthetic(**{"seed": seed, **kw}), None)


@_register("mnist", needs_root=True)
def _mnist(root, seed, **kw):
    return load_idx_set("mnist", root, **kw)


@_register("fashion-mnist", needs_root=True)
def _fashion(root, seed, **kw):
    return load_idx_set("fashion-mnist", root, **kw)


@_register("cifar10", needs_root=True)
def _cifar10(root, seed, **kw):
    return load_cifar10(root, **kw)


@_register("wiki-summaries", needs_root=True, own_split=True)
def _wiki_summaries(root, seed, **kw):
    return load_text(read_wiki_summaries(root), **kw)


@_register("wikitext", needs_root=True, own_split=True)
def _wikitext(root, seed, **kw):
    return load_text(read_wikitext(root), **kw)


def names() -> list[str]:
    """The dataset names :func:`load` accepts."""
    return sorted(_LOADERS)


def load(name: str, root: str | Path | None = None, *, val_fraction: float = 0.1, seed: int = 0,
         **options: Any) -> tuple[ArrayDataset, ArrayDataset | None, ArrayDataset]:
    """``(train, val, test)`` datasets of images ``(C, H, W)`` float32 and integer labels.

    ``val`` is a seeded random ``val_fraction`` of the official training set (None when 0); the test
    set is never used for any selection. ``root`` is the folder holding the dataset's files (unused
    by ``digits`` and ``synthetic``): the folder with MNIST's / Fashion-MNIST's four IDX ``.gz``
    files (or its ``mnist`` / ``fashion-mnist`` sub-folder), or the folder with CIFAR-10's
    ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``. Images are normalized per batch;
    ``options`` go to the dataset (``augment=False`` turns off CIFAR's crop + flip).

    The text corpora ``wiki-summaries`` (the folder with ``summaries_en.jsonl.gz``) and ``wikitext``
    (the folder with ``wiki.{train,valid,test}.raw``) give :class:`~prunekit.data.text.TextWindows`
    of next-token targets in their own fixed splits (``val_fraction`` is not used); options
    ``seq_len`` (128), ``stride`` (evaluation windows, default ``seq_len``) and ``tokenizer``
    (``"byte"`` or ``"char"``), see :mod:`prunekit.data.text`.
    """
    if name not in _LOADERS and is_custom(name):
        return load_custom(name, val_fraction, seed)
    if name not in _LOADERS:
        raise UnknownNameError(f"unknown dataset {name!r}; valid datasets: {', '.join(names())}, "
                               "a module:function returning (train, val, test), or a folder of .npz/.pt tensors")
    fn, needs_root = _LOADERS[name]
    if needs_root and root is None:
        raise DataFileError(f"dataset {name!r} needs root= (or --data-dir) pointing at its files")
    if needs_root and not Path(root).exists():
        raise DataFileError(f"the data folder {root} for dataset {name!r} does not exist; pass the folder "
                            "holding its files")
    if name in _OWN_SPLIT:  # the corpus fixes its validation split; val_fraction does not apply
        return fn(Path(root), seed, **options)
    full, test, train_transform = fn(Path(root) if root is not None else None, seed, **options)
    train, val = split(full, val_fraction, seed, train_transform)
    return train, val, test


__all__ = ["load", "names", "ArrayDataset", "batches", "num_batches", "split", "digits", "synthetic",
           "load_idx_set", "load_cifar10",
           "TextWindows", "load_text", "read_wiki_summaries", "read_wikitext"]
