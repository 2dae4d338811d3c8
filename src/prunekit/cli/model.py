"""The model a command works on: zoo name or ``module:factory``, and its file in any form ``prune`` writes.

Forms on disk: ``sparse`` (``pk.save``: pruned tensors as bitmask+values or CSR, masks included),
``compact`` (``pk.save_compact``: a folder with smaller dense layers and their manifest) and ``dense``
(a plain state dict, ``.safetensors`` or torch file, masks included when it has any).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

FORMS = ("sparse", "compact", "dense")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes such as 1,28,28 (got {text!r})") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1 (got {text!r})")
    return shape


def model_options(p: argparse.ArgumentParser) -> None:
    """MODEL, --input-shape and --num-classes: what every model command takes."""
    p.add_argument("model", help="zoo name (see `prunekit models`) or module:factory returning an nn.Module, "
                                 "imported from the current directory")
    p.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                   help="one example's shape (default: the zoo model's usual input)")
    p.add_argument("--num-classes", type=int, default=10, metavar="N", help="classes of a zoo model (default 10)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``summary`` on the ``prunekit`` subparsers."""
    p = sub.add_parser("summary", help="parameters, nonzeros, MACs and theoretical speedup of a model",
                       description="Print the pk.summary table of MODEL (optionally with --weights).")
    model_options(p)
    p.add_argument("--weights", type=Path, help="weights in any form prune writes (default: fresh init)")
    sub.add_parser("models", help="the model zoo: names, usual input shape, parameters",
                   description="List the zoo models MODEL accepts (besides module:factory), with the input "
                               "shape each is made for and its parameters at 10 classes.")


def build_model(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor]:
    """The model named on the command line (freshly initialised) and one example input for it."""
    from .. import models, userdefs
    from ..errors import PruneError

    if userdefs.is_reference(args.model):
        model = userdefs.model(args.model)
        if args.input_shape is None:
            raise PruneError(f"{args.model} is not a zoo model: pass --input-shape C,H,W")
        return model, torch.zeros(1, *args.input_shape)
    from ..bench.zoo import default_input_shape

    shape = args.input_shape or default_input_shape(args.model)
    model = models.create(args.model, num_classes=args.num_classes, in_channels=shape[0], input_size=shape[1:])
    return model, torch.zeros(1, *shape)


def form_of(path: Path) -> str:
    """Which form the file or folder at ``path`` holds (see the module docstring)."""
    from ..graph.io import MANIFEST
    from ..sparse.storage import FORMAT

    if path.is_dir() and (path / MANIFEST).is_file():
        return "compact"
    if path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as f:
                if (f.metadata() or {}).get("format") == FORMAT:
                    return "sparse"
        except Exception:  # noqa: BLE001 - unreadable: the dense reader names the problem
            pass
    return "dense"


def load_model(args: argparse.Namespace, path: Path) -> tuple[nn.Module, torch.Tensor, str]:
    """MODEL with the weights at ``path`` in whatever form they are, its example input, and the form."""
    from .. import load, load_compact

    model, example = build_model(args)
    form = form_of(path)
    if form == "compact":
        model = load_compact(path, lambda: build_model(args)[0])
    elif form == "sparse":
        load(path, model)
    else:
        _load_state(model, path)
    return model, example, form


def _load_state(model: nn.Module, path: Path) -> None:
    """Load a state dict strictly, attaching the masks it carries first."""
    from .. import models
    from ..masks import Masks, split_state

    masks = split_state(models.read_state_dict(path))[1]
    if masks:
        Masks(masks).apply(model)
    models.load_weights(model, path)


def write_model(model: nn.Module, path: Path, form: str) -> None:
    """Write ``model`` to ``path`` in ``form`` (``compact`` needs a model returned by ``pk.compact``)."""
    from .. import save, save_compact

    path.parent.mkdir(parents=True, exist_ok=True)
    if form == "compact":
        save_compact(model, path)
    elif form == "sparse":
        save(model, path)
    else:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(path))
        else:
            torch.save(state, path)


def size_of(path: Path) -> int:
    """Bytes on disk of a file, or of every file in a folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _summary(args: argparse.Namespace) -> int:
    from .. import summary

    if args.weights:
        model, example, _ = load_model(args, args.weights)
    else:
        model, example = build_model(args)
    print(summary(model, example))
    return 0


def _models(args: argparse.Namespace) -> int:
    from .. import models
    from ..bench.zoo import default_input_shape
    from .tables import console, table

    rows = []
    for name in models.names():
        shape = default_input_shape(name)
        params = sum(p.numel() for p in models.create(name).parameters())
        rows.append([name, "×".join(map(str, shape)), f"{params:,}"])
    console().print(table("model zoo", ["model", "input C×H×W", "parameters"], rows,
                          caption="or any module:factory, with --input-shape"))
    return 0


HANDLERS = {"summary": _summary, "models": _models}
