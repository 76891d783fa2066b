"""Plots of the course: where a person would rather look than read.

Every function draws on a matplotlib Axes (a new figure when `ax` is None) and returns the Axes,
so a notebook can show it and a script can save it. This module imports nothing of the project:
it takes plain numbers or objects with the documented attributes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_profile", "plot_block_costs"]


def _axes(ax, figsize=(8, 4)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_profile(profile, ax=None, log: bool = True):
    """Per-layer computation (MACs) beside memory (output activations and parameters).

    `profile` is what `edgeai.efficiency.profile` returns (anything with `.layers` whose rows have
    `name`, `type`, `macs`, `activations`, `params`). Layers that neither compute nor store
    anything (views, activations functions) are left out.
    """
    rows = [r for r in profile.layers if r.macs or r.params]
    if not rows:
        raise ValueError("the profile has no layer with MACs or parameters to plot")
    ax = _axes(ax, figsize=(max(6, 0.5 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    width = 0.27
    series = [
        ("MACs", [r.macs for r in rows], "tab:red"),
        ("output activations", [r.activations for r in rows], "tab:blue"),
        ("parameters", [r.params for r in rows], "tab:green"),
    ]
    for i, (label, values, color) in enumerate(series):
        ax.bar(x + (i - 1) * width, values, width, label=label, color=color)
    ax.set_xticks(x, [f"{r.name or '(model)'}\n{r.type}" for r in rows], rotation=60, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("count")
    ax.set_title("Computation vs memory per layer")
    ax.legend()
    ax.figure.tight_layout()
    return ax


def plot_block_costs(costs, ax=None, log: bool = True):
    """Parameters and MACs per block, side by side: which building block buys what.

    `costs` maps a block's name to anything with `params` and `macs` attributes (e.g. the
    `Cost` of `edgeai.blocks`, or a profile) or to a (params, macs) pair; the blocks are shown in
    the order given.
    """
    if not costs:
        raise ValueError("costs is empty: pass {block name: cost} with at least one block")
    names = list(costs)
    pairs = [(c.params, c.macs) if hasattr(c, "macs") else tuple(c) for c in costs.values()]
    ax = _axes(ax, figsize=(max(6, 0.9 * len(names) + 2), 4))
    x = np.arange(len(names))
    width = 0.4
    ax.bar(x - width / 2, [p for p, _ in pairs], width, label="parameters", color="tab:green")
    ax.bar(x + width / 2, [m for _, m in pairs], width, label="MACs", color="tab:red")
    ax.set_xticks(x, names, rotation=30, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("count")
    ax.set_title("Parameters and MACs per block")
    ax.legend()
    ax.figure.tight_layout()
    return ax
