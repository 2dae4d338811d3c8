"""Text data for language models: tokenizers, the strided perplexity windows, the corpus loaders."""
from __future__ import annotations

import gzip
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prunekit as pk
from prunekit.data.text import IGNORE, Tokenizer, calibration, read_wiki_summaries, split_of, windows


@given(st.text(max_size=200))
def test_byte_tokenizer_round_trips_any_text(text):
    tok = Tokenizer("byte")
    ids = tok.encode(text)
    assert ids.dtype == torch.int64 and len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text and tok.vocab_size == 256


def test_char_tokenizer_maps_unseen_characters_to_unknown():
    tok = Tokenizer("char", "abcab é")
    assert tok.vocab_size == 6  # unknown + space, a, b, c, é
    assert tok.decode(tok.encode("cab é")) == "cab é"
    assert tok.encode("zq").tolist() == [0, 0]
    with pytest.raises(pk.PruneError, match="tokenizer"):
        Tokenizer("word")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 120), seq_len=st.integers(1, 16), data=st.data())
def test_windows_score_every_target_once_with_context(n, seq_len, data):
    """The perplexity protocol: each next-token target of the stream is scored by exactly one window."""
    if n - 1 < seq_len:
        with pytest.raises(pk.PruneError, match="too few"):
            windows(torch.arange(n), seq_len)
        return
    stride = data.draw(st.integers(1, seq_len))
    tokens = torch.randperm(n)  # distinct values identify positions
    w = windows(tokens, seq_len, stride)
    assert w.images.shape[1] == seq_len
    pos = {int(t): i for i, t in enumerate(tokens)}
    for x, y in zip(w.images, w.labels):
        start = pos[int(x[0])]
        assert x.tolist() == tokens[start:start + seq_len].tolist()
        scored = y != IGNORE
        assert y[scored].tolist() == tokens[start + 1:start + seq_len + 1][scored].tolist()
        assert scored[-1] and scored.tolist() == sorted(scored.tolist())  # a scored suffix
    got = w.labels[w.labels != IGNORE].tolist()
    assert got == tokens[1:].tolist() and w.tokens == n - 1


def test_windows_reject_bad_stride():
    with pytest.raises(pk.PruneError, match="stride"):
        windows(torch.arange(50), 8, 9)


def test_uniform_model_has_perplexity_of_the_vocabulary():
    """evaluate() averages per scored token, so an LM that predicts uniformly has perplexity = vocab."""

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, idx):
            return torch.zeros(*idx.shape, 7) + self.w

    w = windows(torch.randint(7, (300,)), 10, 3)
    result = pk.evaluate(Uniform(), w, batch_size=8)
    assert pk.data.text.perplexity(result["loss"]) == pytest.approx(7.0, rel=1e-5)


def _write_wikitext(root, n=3000):
    g = torch.Generator().manual_seed(0)
    words = ["the", "cat", "sat", "on", "mat", "é", "\n"]
    for name in ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw"):
        idx = torch.randint(len(words), (n // 4,), generator=g)
        (root / name).write_text(" ".join(words[i] for i in idx), encoding="utf-8")


def test_wikitext_raw_files_load_with_their_own_split(tmp_path):
    _write_wikitext(tmp_path)
    train, val, test = pk.data.load("wikitext", tmp_path, seq_len=32, stride=16)
    assert train.num_classes == 256 and train.images.shape[1] == 32
    assert (train.labels[:-1] != IGNORE).all()  # training windows overlap only at the stream's end
    assert train.tokens == len((tmp_path / "wiki.train.raw").read_bytes()) - 1
    raw = (tmp_path / "wiki.test.raw").read_text(encoding="utf-8").encode()
    assert test.tokens == len(raw) - 1
    (tmp_path / "wiki.valid.raw").unlink()
    with pytest.raises(pk.data.DataFileError, match="wiki.valid.raw"):
        pk.data.load("wikitext", tmp_path)


def test_wiki_summaries_follow_the_readme_split(tmp_path):
    titles = [f"Article {i}" for i in range(60)]
    with gzip.open(tmp_path / "summaries_en.jsonl.gz", "wt", encoding="utf-8") as f:
        for t in titles:
            f.write(json.dumps({"title": t, "text": f"text of {t}"}) + "\n")
    texts = read_wiki_summaries(tmp_path)
    for t in titles:
        assert f"text of {t}" in texts[split_of(t)]
        assert all(f"text of {t}\n" not in texts[s] + "\n" for s in texts if s != split_of(t))
    assert split_of("Article 0") == {0: "test", 1: "val"}.get(
        int(__import__("hashlib").sha1(b"Article 0").hexdigest(), 16) % 10, "train")
    (tmp_path / "summaries_en.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(pk.data.DataFileError, match="download it again"):
        read_wiki_summaries(tmp_path)


def test_calibration_windows_are_seeded_training_windows(tmp_path):
    _write_wikitext(tmp_path)
    train, _, _ = pk.data.load("wikitext", tmp_path, seq_len=16)
    a, b = calibration(train, 5, seed=1), calibration(train, 5, seed=1)
    assert torch.equal(a.images, b.images) and len(a) == 5
    rows = {tuple(r.tolist()) for r in train.images}
    assert all(tuple(r.tolist()) in rows for r in a.images)
    with pytest.raises(pk.PruneError, match="calibration"):
        calibration(train, len(train) + 1)


def test_real_wiki_summaries(shared):
    root = shared / "datasets" / "wiki-summaries"
    train, val, test = pk.data.load("wiki-summaries", root, seq_len=128)
    total = train.tokens + val.tokens + test.tokens
    assert 4.8e6 < total < 5.6e6  # UTF-8 bytes of 4.88 M characters, plus separators
    assert 0.08 < test.tokens / total < 0.12 and 0.08 < val.tokens / total < 0.12
    assert (len(train) - 1) * 128 < train.tokens <= len(train) * 128
    again = pk.data.load("wiki-summaries", root, seq_len=128)[2]
    assert torch.equal(again.labels, test.labels)
