"""Text for language models: wiki-summaries (its fixed split) or raw WikiText files, byte- or
character-level tokens, and fixed-length windows ready for the training loop and the perplexity protocol.

A window is ``(x, y)`` with ``x`` = tokens ``[b, b + T)`` and ``y`` = tokens ``[b + 1, b + T + 1)``
(next-token targets). Targets that an earlier window already scored are set to :data:`IGNORE`, so the
mean cross-entropy over a split's windows is the standard strided perplexity protocol: every token of
the split is predicted exactly once, each with up to ``T - stride`` tokens of extra context.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path

import torch

from ..errors import DataFileError, PruneError
from ..losses import IGNORE
from .base import ArrayDataset

SUMMARIES = "summaries_en.jsonl.gz"
WIKITEXT = {"train": "wiki.train.raw", "val": "wiki.valid.raw", "test": "wiki.test.raw"}
SPLITS = ("train", "val", "test")


class Tokenizer:
    """Byte-level (UTF-8 bytes, 256 tokens, nothing unknown) or character-level (the characters of the
    training text, sorted; index 0 stands for any character unseen in training)."""

    def __init__(self, kind: str = "byte", text: str = ""):
        if kind not in ("byte", "char"):
            raise PruneError(f"unknown tokenizer {kind!r}; use 'byte' or 'char'")
        self.kind = kind
        self.chars = "" if kind == "byte" else "\ufffd" + "".join(sorted(set(text) - {"\ufffd"}))
        self._index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return 256 if self.kind == "byte" else len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """The token ids of ``text`` (int64)."""
        if self.kind == "byte":
            data = text.encode("utf-8")
            return torch.frombuffer(bytearray(data), dtype=torch.uint8).long() if data else torch.zeros(0, dtype=torch.long)
        return torch.tensor([self._index.get(c, 0) for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> str:
        """The text of token ids (bytes that do not form UTF-8 become U+FFFD)."""
        if self.kind == "byte":
            return bytes(ids.to(torch.uint8).tolist()).decode("utf-8", errors="replace")
        return "".join(self.chars[i] for i in ids.tolist())

    def classes(self) -> tuple[str, ...]:
        """One label per token id, so a windows dataset's ``num_classes`` is the vocabulary size."""
        return tuple(self.chars) if self.kind == "char" else tuple(f"<{i:02x}>" for i in range(256))


class TextWindows(ArrayDataset):
    """Fixed-length token windows ``(x, y)``; ``tokens`` counts the targets scored (not :data:`IGNORE`)."""

    @property
    def tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


def split_of(title: str) -> str:
    """wiki-summaries' fixed split of an article (its README): sha1(title) % 10 is 0 → test, 1 → val."""
    r = int(hashlib.sha1(title.encode()).hexdigest(), 16) % 10
    return "test" if r == 0 else "val" if r == 1 else "train"


def _find(root: Path, name: str, sub: str) -> Path:
    for path in (root / name, root / sub / name):
        if path.is_file():
            return path
    raise DataFileError(f"no {name} in {root} (or its {sub}/ folder); pass the folder that holds it")


def read_wiki_summaries(root: str | Path) -> dict[str, str]:
    """Split name → the text of its articles (file order, joined by blank lines)."""
    path = _find(Path(root), SUMMARIES, "wiki-summaries")
    parts: dict[str, list[str]] = {s: [] for s in SPLITS}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    article = json.loads(line)
                    parts[split_of(article["title"])].append(article["text"])
    except (OSError, EOFError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path} is not gzip'd JSON lines with title and text ({type(err).__name__}: "
                            f"{err}); download it again") from None
    return {s: "\n\n".join(texts) for s, texts in parts.items()}


def read_wikitext(root: str | Path) -> dict[str, str]:
    """Split name → the text of WikiText's ``wiki.{train,valid,test}.raw`` files in ``root``."""
    root = Path(root)
    missing = [f for f in WIKITEXT.values() if not (root / f).is_file()]
    if missing:
        raise DataFileError(f"{root} lacks {', '.join(missing)}; pass the folder holding WikiText's raw files")
    return {s: (root / f).read_text(encoding="utf-8", errors="replace") for s, f in WIKITEXT.items()}


def windows(tokens: torch.Tensor, seq_len: int, stride: int | None = None,
            classes: tuple[str, ...] = ()) -> TextWindows:
    """Windows of ``seq_len`` inputs every ``stride`` tokens (``seq_len`` when None: no overlap), each
    scoring only targets no earlier window scored; a last window ends at the stream's end so every
    target after the first token is scored exactly once."""
    stride = seq_len if stride is None else stride
    if not 1 <= stride <= seq_len:
        raise PruneError(f"stride must be in [1, seq_len={seq_len}] (got {stride})")
    n = len(tokens) - 1  # targets available
    if n < seq_len:
        raise DataFileError(f"the text has {len(tokens)} tokens, too few for one window of {seq_len} + 1; "
                            "use more text or a shorter seq_len")
    starts = list(range(0, n - seq_len + 1, stride))
    if starts[-1] + seq_len < n:
        starts.append(n - seq_len)
    index = torch.tensor(starts)[:, None] + torch.arange(seq_len)
    x, y = tokens[index], tokens[index + 1].clone()
    scored_to = 0  # targets [0, scored_to) are scored already
    for row, b in enumerate(starts):
        y[row, : max(0, scored_to - b)] = IGNORE
        scored_to = b + seq_len
    return TextWindows(x, y, classes=classes)


def load_text(texts: dict[str, str], *, seq_len: int = 128, stride: int | None = None, tokenizer: str = "byte",
              ) -> tuple[TextWindows, TextWindows, TextWindows]:
    """``(train, val, test)`` windows of ``texts`` (split → text). Training windows do not overlap (but
    for the last, which ends at the text's end); validation and test follow the perplexity protocol
    with ``stride`` (default: ``seq_len``)."""
    if seq_len < 1:
        raise PruneError(f"seq_len must be >= 1 (got {seq_len})")
    tok = Tokenizer(tokenizer, texts["train"])
    classes = tok.classes()
    out = [windows(tok.encode(texts[s]), seq_len, None if s == "train" else stride, classes) for s in SPLITS]
    return out[0], out[1], out[2]


def calibration(train: TextWindows, n: int, seed: int = 0) -> TextWindows:
    """``n`` training windows drawn at random (seeded): the calibration data of Wanda and SparseGPT."""
    if not 1 <= n <= len(train):
        raise PruneError(f"cannot draw {n} calibration windows from {len(train)} training windows; "
                         f"ask for 1 to {len(train)}")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return train.subset(pick)


def perplexity(loss: float) -> float:
    """Perplexity per token from a mean cross-entropy in nats."""
    return math.exp(loss) if loss < 700 else math.inf
