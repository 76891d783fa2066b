"""Plots of the course: where a person would rather look than read.

Every function draws on a matplotlib Axes (a new figure when `ax` is None) and returns the Axes,
so a notebook can show it and a script can save it. This module imports nothing of the project:
it takes plain numbers or objects with the documented attributes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_profile", "plot_block_costs", "plot_flops_cdf", "plot_pareto", "plot_search_curves", "plot_reward_curve",
           "plot_alphas"]


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


def plot_flops_cdf(stats, ax=None, unit: float = 1e6):
    """MCUNet's search-space analysis: the cumulative distribution of FLOPs of the models that
    satisfy the constraint, one curve per sub-space. `stats` are objects with `key`, `flops`
    (sorted) and `sampled` (see `edgeai.spaces.edge.flops_distributions`). A curve further to the
    right means more capacity within the same constraint."""
    ax = _axes(ax, figsize=(7, 4))
    for s in stats:
        if not s.flops:
            continue
        n = len(s.flops)
        xs = np.asarray(s.flops) / unit
        ax.step(xs, np.arange(1, n + 1) / n, where="post",
                label=f"{_subspace_label(s.key)} ({n}/{s.sampled} fit)")
    ax.set_xlabel("FLOPs (M)" if unit == 1e6 else f"FLOPs / {unit:g}")
    ax.set_ylabel("fraction of satisfying models")
    ax.set_title("FLOPs distribution of the models that satisfy the constraint")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return ax


def _subspace_label(key) -> str:
    if isinstance(key, tuple) and len(key) == 2:
        return f"w{key[0]}-r{key[1]}"
    return str(key)


def plot_pareto(xs, ys, front=None, ax=None, xlabel: str = "MACs", ylabel: str = "accuracy",
                title: str = "Accuracy vs efficiency", logx: bool = False):
    """Every evaluated candidate as a dot, the Pareto-optimal ones joined by a line.

    `front` is a list of indices into xs/ys (e.g. from `edgeai.strategies.pareto_front`)."""
    ax = _axes(ax, figsize=(6, 4))
    ax.scatter(xs, ys, s=12, alpha=0.5, label="candidates")
    if front:
        fx, fy = [xs[i] for i in front], [ys[i] for i in front]
        ax.plot(fx, fy, "o-", color="tab:red", label="Pareto front")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_search_curves(curves: dict, ax=None, xlabel: str = "evaluations", ylabel: str = "best score so far"):
    """Best score so far against the number of evaluations, one line per strategy."""
    ax = _axes(ax, figsize=(6, 4))
    for label, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_reward_curve(rewards, baselines=None, window: int = 20, ax=None, label: str = "reward",
                      ylabel: str = "reward"):
    """The rewards of a reinforcement-learning search in the order they came (dots), their moving
    average over `window` (a line) and, if given, the baseline b the policy gradient subtracted."""
    ax = _axes(ax, figsize=(7, 4))
    rewards = np.asarray(rewards, dtype=float)
    if rewards.ndim != 1 or rewards.size == 0:
        raise ValueError("rewards must be a non-empty 1-D sequence of numbers")
    steps = np.arange(1, rewards.size + 1)
    line = ax.plot(steps, rewards, ".", alpha=0.25, label=f"{label} (each architecture)")[0]
    w = max(1, min(int(window), rewards.size))
    smooth = np.convolve(rewards, np.ones(w) / w, mode="valid")
    ax.plot(steps[w - 1:], smooth, color=line.get_color(), label=f"{label}, mean of {w}")
    if baselines is not None:
        b = np.asarray(baselines, dtype=float)
        ax.plot(np.linspace(1, rewards.size, b.size), b, "--", color="gray", label="baseline b")
    ax.set_xlabel("architectures sampled")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_alphas(probs, rows, columns, ax=None, title: str = "softmax(α)"):
    """Architecture weights as a heatmap: one row per edge or layer, one column per operation,
    each cell the probability softmax(α) gives that operation (the number written in it)."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (len(rows), len(columns)):
        raise ValueError(f"probs has shape {probs.shape}, but there are {len(rows)} rows and {len(columns)} columns")
    ax = _axes(ax, figsize=(0.9 * len(columns) + 2, 0.4 * len(rows) + 1.5))
    image = ax.imshow(probs, cmap="viridis", aspect="auto")
    ax.set_xticks(np.arange(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(rows)), rows)
    low, high = probs.min(), probs.max()
    for i in range(len(rows)):
        for j in range(len(columns)):
            dark = probs[i, j] < low + 0.6 * (high - low)  # viridis is dark at the low end
            ax.text(j, i, f"{probs[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.figure.colorbar(image, ax=ax)
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax
