"""Fig. 2 of the paper drawn from a :class:`~kc.core.model.ConsistencyNet` itself.

Every box of the drawing is read off the model object (its ``weights``, ``sigmas`` and ``p``),
so the picture cannot drift from the code: a g with K = 3 gives four rows, one per branch.
Row k holds the block of Eq. 1,

    h(k) = W(k) [x + p(k+1) ReLU(Sigma(k+1)^{-1/2} h(k+1))],

drawn left to right as ``+ -> Conv W(k) -> Sigma(k)^{-1/2} -> ReLU -> p(k)``, whose output is
added to x at the input of row k - 1. Row 0 ends in g(x) = h(0).

Two pure functions: :func:`branch_table` (model in, a table of the branches with their
parameter counts out) and :func:`draw_architecture` (model in, matplotlib Figure out). Nothing
is written to disk here; the ``fig2_architecture`` notebook saves the results.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from kc.core.model import ConsistencyNet

__all__ = ["Block", "blocks", "branch_table", "draw_architecture"]


@dataclass(frozen=True)
class Block:
    """The operations of block k of Eq. 1, as read from a fitted or fresh g.

    Attributes:
        k: block index, 0..K.
        conv: text of the convolution W(k): ``"C_in->C_out, kxk, no bias"``.
        conv_params: number of weights of W(k).
        sigma: the Sigma(k) mode (``"batch"`` or ``"instance"``), None for k = 0.
        p: the current value of p(k), None for k = 0.
        p_params: learnable scalars behind p(k) (1 for k >= 1, else 0).
    """

    k: int
    conv: str
    conv_params: int
    sigma: str | None
    p: float | None
    p_params: int

    @property
    def params(self) -> int:
        """Parameters owned by block k: W(k) and the scalar behind p(k)."""
        return self.conv_params + self.p_params


def _check(g: object) -> ConsistencyNet:
    if not isinstance(g, ConsistencyNet):
        raise TypeError(f"expected a kc.ConsistencyNet, got {type(g).__name__}")
    return g


def blocks(g: ConsistencyNet) -> list[Block]:
    """One :class:`Block` per branch k = 0..K, read from ``g.weights``, ``g.sigmas``, ``g.p``.

    Args:
        g: a consistency network with K = ``g.order``.

    Returns:
        K + 1 blocks, index k = block k of Eq. 1.

    Example:
        >>> [b.params for b in blocks(ConsistencyNet(4, 2, order=1, kernel_size=1))]
        [8, 17]
    """
    g = _check(g)
    p = g.p.detach()
    out = []
    for k, conv in enumerate(g.weights):
        kh, kw = conv.kernel_size
        out.append(
            Block(
                k=k,
                conv=f"{conv.in_channels}->{conv.out_channels}, {kh}x{kw}"
                + (", no bias" if conv.bias is None else ", bias"),
                conv_params=sum(t.numel() for t in conv.parameters()),
                sigma=g.sigmas[k - 1].mode if k >= 1 else None,
                p=float(p[k - 1]) if k >= 1 else None,
                p_params=1 if k >= 1 else 0,
            )
        )
    return out


def branch_table(g: ConsistencyNet) -> pd.DataFrame:
    """The K + 1 branches of g with their parameter counts.

    Branch k is the path ``Conv_k -> Norm_k -> ReLU_k -> p(k) -> Conv_{k-1} -> ... -> Conv_0``
    that produces x(k) (Eq. 4). Two counts per branch:

    * ``own_params``: W(k) and the scalar behind p(k); these partition the parameters of g,
      so the column sums to ``sum(t.numel() for t in g.parameters())``.
    * ``path_params``: every parameter the branch passes through (W(k), ..., W(0) and
      p(k), ..., p(1)); branches share W(0), so this column does not sum to the total.

    Returns:
        One row per branch with columns ``branch``, ``nonlinear_layers``, ``operations``,
        ``conv``, ``sigma``, ``p``, ``own_params``, ``path_params``.
    """
    bs = blocks(g)
    rows = []
    for b in bs:
        ops = [f"Conv{b.k}"]
        for j in range(b.k, 0, -1):
            ops += [f"Norm{j}", f"ReLU{j}", f"p({j})", f"Conv{j - 1}"]
        rows.append(
            {
                "branch": b.k,
                "nonlinear_layers": b.k,
                "operations": " -> ".join(ops),
                "conv": b.conv,
                "sigma": b.sigma or "",
                "p": b.p,
                "own_params": b.params,
                "path_params": sum(c.params for c in bs[: b.k + 1]),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------- drawing

_COLOURS = {"conv": "#9ecae1", "norm": "#c7e9c0", "relu": "#fdd0a2", "p": "#dadaeb"}


def _box(ax, x: float, y: float, text: str, kind: str, gid: str, w: float = 1.5) -> None:
    patch = FancyBboxPatch(
        (x - w / 2, y - 0.3),
        w,
        0.6,
        boxstyle="round,pad=0.04",
        facecolor=_COLOURS[kind],
        edgecolor="black",
        linewidth=0.8,
    )
    patch.set_gid(gid)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=9,
            linewidth=0.8,
            color="black",
            shrinkA=0,
            shrinkB=0,
        )
    )


def draw_architecture(g: ConsistencyNet, *, title: str | None = None) -> Figure:
    """Draw g as in the paper's Fig. 2: one row per branch, from the model object.

    Row k (top: k = K, bottom: k = 0) shows the block of Eq. 1: the sum node ``x + x_higher``
    (k < K), ``Conv W(k)`` with its channels and kernel, and for k >= 1 the normalisation
    ``Sigma(k)^{-1/2}`` (its mode), ``ReLU`` and the current value of ``p(k)``, whose output
    enters the sum node of row k - 1. At the right of each row: the parameters it owns
    (:func:`branch_table`). Each box carries a matplotlib gid ``conv-k``, ``norm-k``,
    ``relu-k`` or ``p-k`` so tests can count them.

    Args:
        g: a consistency network (fresh or fitted; fitted p values are shown).
        title: figure title; default names K and the total parameter count.

    Returns:
        A matplotlib Figure (not shown, not saved).
    """
    bs = blocks(g)
    K = g.order
    total = sum(t.numel() for t in g.parameters())
    fig = Figure(figsize=(10.5, 1.0 * (K + 1) + 0.6))
    ax = fig.add_subplot()
    ax.set_axis_off()
    xs = {"in": 0.0, "sum": 1.3, "conv": 3.0, "norm": 5.0, "relu": 6.7, "p": 8.2, "n": 10.1}
    row_y = {k: 1.1 * k for k in range(K + 1)}  # branch K on top, as in Fig. 2
    # the input x, with a bus feeding every row
    ax.text(xs["in"] - 0.2, row_y[K] / 2, "x", ha="right", va="center", fontsize=12)
    ax.plot([xs["in"], xs["in"]], [0.0, row_y[K]], color="black", lw=0.8)
    for b in bs:
        y = row_y[b.k]
        if b.k < K:  # x + x_higher
            node = Circle((xs["sum"], y), 0.18, facecolor="white", edgecolor="black", lw=0.8)
            node.set_gid(f"sum-{b.k}")
            ax.add_patch(node)
            ax.text(xs["sum"], y, "+", ha="center", va="center", fontsize=10)
            _arrow(ax, (xs["in"], y), (xs["sum"] - 0.18, y))
            _arrow(ax, (xs["sum"] + 0.18, y), (xs["conv"] - 0.79, y))
        else:
            _arrow(ax, (xs["in"], y), (xs["conv"] - 0.79, y))
        _box(ax, xs["conv"], y, f"Conv W({b.k})\n{b.conv}", "conv", f"conv-{b.k}", w=1.9)
        if b.k == 0:
            _arrow(ax, (xs["conv"] + 0.99, y), (xs["conv"] + 1.8, y))
            ax.text(xs["conv"] + 1.9, y, "g(x) = h(0)", ha="left", va="center", fontsize=10)
        else:
            _arrow(ax, (xs["conv"] + 0.99, y), (xs["norm"] - 0.79, y))
            _box(
                ax,
                xs["norm"],
                y,
                f"Norm $\\Sigma_{{({b.k})}}^{{-1/2}}$\n({b.sigma})",
                "norm",
                f"norm-{b.k}",
            )
            _arrow(ax, (xs["norm"] + 0.79, y), (xs["relu"] - 0.54, y))
            _box(ax, xs["relu"], y, f"ReLU{b.k}", "relu", f"relu-{b.k}", w=1.0)
            _arrow(ax, (xs["relu"] + 0.54, y), (xs["p"] - 0.54, y))
            _box(ax, xs["p"], y, f"p({b.k})\n= {b.p:.3g}", "p", f"p-{b.k}", w=1.0)
            # x_higher goes down to the sum node of row k - 1
            yb = row_y[b.k - 1]
            ax.plot(
                [xs["p"] + 0.54, xs["p"] + 0.8, xs["p"] + 0.8],
                [y, y, y - 0.55],
                color="black",
                lw=0.8,
            )
            ax.plot(
                [xs["p"] + 0.8, xs["sum"], xs["sum"]],
                [y - 0.55, y - 0.55, y - 0.55],
                color="black",
                lw=0.8,
            )
            _arrow(ax, (xs["sum"], y - 0.55), (xs["sum"], yb + 0.18))
        ax.text(
            xs["n"],
            y,
            f"branch {b.k} owns\n{b.params:,} parameters",
            ha="left",
            va="center",
            fontsize=9,
            color="#444444",
        )
    ax.set_xlim(-0.8, 12.2)
    ax.set_ylim(-0.6, K * 1.1 + 0.6)
    ax.set_aspect("equal")
    fig.suptitle(title or f"g of Eq. 1 with K = {K}: {total:,} parameters", fontsize=11)
    fig.tight_layout()
    return fig
