"""SparseGPT's layer-wise OBS reconstruction as pure tensor math (Frantar & Alistarh 2023, Algorithm 1).

Given a weight W (rows × cols) and the layer's Hessian H = 2XXᵀ/n, prune W to a target pattern while
updating the surviving weights to keep WX close: columns are visited left to right in lazy blocks;
within a block the weights to prune are those with the lowest w²/[H⁻¹]_qq², and every pruned (or
kept) column's error is spread onto the columns after it through the upper Cholesky factor of H⁻¹.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pattern:
    """What to prune: ``count`` weights of the whole matrix, ``per_row`` of every row, or N:M (``n`` kept of ``m``)."""

    count: int | None = None
    per_row: int | None = None
    n: int | None = None
    m: int | None = None


def inverse_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """The upper Cholesky factor U of (H + λI)⁻¹ = UᵀU, λ = ``damp`` × mean diag(H); dead inputs get H_qq = 1.

    With J the reversal, JHJ = MMᵀ gives U = J M⁻¹ J: one Cholesky and one triangular solve (several
    times faster on CPU than inverting H and factoring again). Raises ``torch.linalg.LinAlgError``
    when H is not positive definite even after damping.
    """
    h = h.clone()
    diag = h.diagonal()
    diag[diag == 0] = 1  # inputs that were always zero: their weights move nothing on the data
    diag.add_(damp * diag.mean())
    m = torch.linalg.cholesky(h.flip(0, 1))
    eye = torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    return torch.linalg.solve_triangular(m, eye, upper=False).flip(0, 1)


def _lowest(sal: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per row of ``sal``, True at its ``k[row]`` lowest entries (at equal value the lower index goes)."""
    if bool((k == k[0]).all()):  # one k: a linear-time selection instead of a sort
        kk = int(k[0])
        if kk <= 0 or kk >= sal.shape[1]:
            return torch.full_like(sal, kk > 0, dtype=torch.bool)
        thr = sal.kthvalue(kk, dim=1, keepdim=True).values
        low, tie = sal < thr, sal == thr
        return low | (tie & (tie.cumsum(1) <= kk - low.sum(1, keepdim=True)))
    order = sal.argsort(dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(sal.shape[1], device=sal.device).expand_as(order))
    return ranks < k.unsqueeze(1)


def _budget(target: torch.Tensor, done: torch.Tensor, pre: torch.Tensor, later: torch.Tensor,
            size: int, total: torch.Tensor) -> torch.Tensor:
    """How many to prune in this block: on pace for ``target`` (cumulative), at least the already-pruned
    ``pre``, leaving room for the already-pruned ``later`` blocks hold, never past ``total``."""
    room = torch.clamp(total - done - later, max=size)
    return torch.minimum(torch.maximum(target - done, pre), room)


def reconstruct(w: torch.Tensor, hinv: torch.Tensor, pattern: Pattern, pruned: torch.Tensor | None = None,
                block: int = 128, sub: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune ``w`` (float, rows × cols) to ``pattern``, updating survivors; returns (new w, pruned mask).

    ``hinv`` is :func:`inverse_factor` of the layer's Hessian; ``pruned`` marks weights already pruned
    (they stay pruned). Counts are exact: ``count`` in all, ``per_row`` per row, M - N per block of M.
    Masks are chosen per lazy ``block`` of columns (N:M per group of M); errors are applied column by
    column within a ``sub``-block and lazily (one matrix product) beyond it — the same arithmetic as
    the paper's loop, in fewer memory passes. Works on the transpose, so a column is contiguous.
    """
    rows, cols = w.shape
    wt = w.t().contiguous()  # (cols, rows): a weight column is a contiguous row here
    pre = torch.zeros_like(wt, dtype=torch.bool) if pruned is None else pruned.t().contiguous()
    mask = torch.zeros_like(pre)
    nm = pattern.m is not None
    if nm:  # groups of M never straddle a block or a sub-block
        sub = max(pattern.m, sub // pattern.m * pattern.m)
        block = max(sub, block // sub * sub)
    per_row = pattern.per_row is not None
    if not nm:
        total = torch.full((rows,) if per_row else (1,), pattern.per_row if per_row else pattern.count, device=w.device)
        pre_left = pre.sum(0) if per_row else pre.sum().view(1)
        done = torch.zeros_like(total)
    errs = torch.empty(min(block, cols), rows, dtype=w.dtype, device=w.device)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, m1, pre1, h1 = wt[i1:i2], mask[i1:i2], pre[i1:i2], hinv[i1:i2, i1:i2]
        d = h1.diagonal()
        if not nm:
            sal = (w1.pow(2) / d.pow(2).unsqueeze(1)).masked_fill(pre1, -float("inf"))
            pre_b = pre1.sum(0) if per_row else pre1.sum().view(1)
            pre_left -= pre_b
            k = _budget(total * i2 // cols, done, pre_b, pre_left, (i2 - i1) * (1 if per_row else rows), total)
            m1.copy_(_lowest(sal.t(), k).t() if per_row else _lowest(sal.reshape(1, -1), k).view_as(sal))
            done += k
        err = errs[: i2 - i1]
        for s1 in range(0, i2 - i1, sub):
            s2 = min(s1 + sub, i2 - i1)
            for i in range(s1, s2):
                if nm and i % pattern.m == 0:
                    j = slice(i, i + pattern.m)
                    sal = (w1[j].pow(2) / d[j].pow(2).unsqueeze(1)).masked_fill(pre1[j], -float("inf"))
                    m1[j] = _lowest(sal.t(), torch.full((rows,), pattern.m - pattern.n, device=w.device)).t()
                col = w1[i]
                torch.div(col * m1[i], d[i], out=err[i])  # (w - q) / d: the pruned part of the column
                col.masked_fill_(m1[i], 0)
                if i + 1 < s2:
                    w1[i + 1 : s2].addr_(h1[i, i + 1 : s2], err[i], alpha=-1)
            if s2 < i2 - i1:
                w1[s2:].addmm_(h1[s1:s2, s2:].t(), err[s1:s2], alpha=-1)
        if i2 < cols:
            wt[i2:].addmm_(hinv[i1:i2, i2:].t(), err, alpha=-1)
    return wt.masked_fill_(mask, 0).t().contiguous(), mask.t().contiguous()


def saliency(w: torch.Tensor, hinv: torch.Tensor) -> torch.Tensor:
    """w²/[H⁻¹]_qq², the OBS cost of pruning each weight now (the factor's diagonal stands for [H⁻¹]_qq)."""
    return w.pow(2) / hinv.diagonal().pow(2)
