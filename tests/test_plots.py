"""edgeai.plots on small inputs (the Agg backend, no window): each function draws what it was
given (bar heights, line data, points, labels, scales), takes the project's own objects (a
`profile`, block `Cost`s, `SubspaceStats`), and rejects input it cannot draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from torch import nn  # noqa: E402

from edgeai import plots  # noqa: E402
from edgeai.blocks import conv_bn_act_cost, inverted_residual_cost  # noqa: E402
from edgeai.efficiency import profile  # noqa: E402
from edgeai.spaces.edge import SubspaceStats  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def bar_heights(ax) -> list[list[float]]:
    """The heights of each bar series (one BarContainer per `ax.bar` call), in drawing order."""
    return [[bar.get_height() for bar in container] for container in ax.containers]


def test_every_public_function_is_exported():
    public = {name for name, f in vars(plots).items() if name.startswith("plot_") and callable(f)}
    assert public == set(plots.__all__)


def test_plot_profile_draws_macs_activations_and_params_of_layers_that_compute_or_store():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 10))
    p = profile(model, (1, 1, 8, 8))
    ax = plots.plot_profile(p)
    # ReLU and Flatten neither compute nor store: two layers remain, conv (36 weights, 4·36 outputs
    # of 9 MACs each) and linear (144·10 weights + 10 biases)
    assert bar_heights(ax) == [[1296, 1440], [144, 10], [36, 1450]]
    assert [c.get_label() for c in ax.containers] == ["MACs", "output activations", "parameters"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\nConv2d", "3\nLinear"]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "count"
    assert plots.plot_profile(p, log=False).get_yscale() == "linear"
    with pytest.raises(ValueError, match="no layer with MACs or parameters"):
        plots.plot_profile(profile(nn.Sequential(nn.ReLU()), (1, 4)))


def test_plot_block_costs_takes_costs_and_pairs_in_order():
    stem = conv_bn_act_cost(3, 16, 3, 2, 32, 32)
    block = inverted_residual_cost(16, 24, 6, 3, 2, 16, 16)
    ax = plots.plot_block_costs({"stem": stem, "mbconv6": block, "pair": (7, 11)}, log=False)
    assert bar_heights(ax) == [[stem.params, block.params, 7], [stem.macs, block.macs, 11]]
    assert [c.get_label() for c in ax.containers] == ["parameters", "MACs"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stem", "mbconv6", "pair"]
    assert ax.get_yscale() == "linear"
    with pytest.raises(ValueError, match="costs is empty"):
        plots.plot_block_costs({})


def test_plot_flops_cdf_draws_one_step_curve_per_subspace_with_models_that_fit():
    stats = [SubspaceStats((0.5, 128), 10, [2e6, 3e6, 5e6, 9e6]), SubspaceStats((0.7, 160), 10, []),
             SubspaceStats((0.3, 96), 10, [1e6, 4e6])]
    ax = plots.plot_flops_cdf(stats)
    lines = ax.get_lines()
    assert len(lines) == 2  # the sub-space where nothing fits has no curve
    assert list(lines[0].get_xdata()) == [2, 3, 5, 9] and list(lines[0].get_ydata()) == [0.25, 0.5, 0.75, 1.0]
    assert list(lines[1].get_xdata()) == [1, 4] and list(lines[1].get_ydata()) == [0.5, 1.0]
    assert lines[0].get_drawstyle() == "steps-post"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["w0.5-r128 (4/10 fit)", "w0.3-r96 (2/10 fit)"]
    assert ax.get_xlabel() == "FLOPs (M)" and ax.get_ylabel() == "fraction of satisfying models"
    ax = plots.plot_flops_cdf(stats[:1], unit=1e9)
    assert list(ax.get_lines()[0].get_xdata()) == [0.002, 0.003, 0.005, 0.009] and ax.get_xlabel() == "FLOPs / 1e+09"


def test_plot_pareto_draws_every_candidate_and_joins_the_front():
    xs, ys = [4.0, 1.0, 3.0, 2.0], [0.9, 0.5, 0.6, 0.8]
    ax = plots.plot_pareto(xs, ys, front=[1, 3, 0], logx=True, xlabel="MACs", ylabel="accuracy")
    points = ax.collections[0].get_offsets()
    assert np.array_equal(points, np.column_stack([xs, ys]))
    (front,) = ax.get_lines()
    assert list(front.get_xdata()) == [1.0, 2.0, 4.0] and list(front.get_ydata()) == [0.5, 0.8, 0.9]
    assert ax.get_xscale() == "log" and (ax.get_xlabel(), ax.get_ylabel()) == ("MACs", "accuracy")
    assert plots.plot_pareto(xs, ys).get_lines() == []  # no front given: the points only


def test_plot_search_curves_one_line_per_strategy_from_evaluation_one():
    ax = plots.plot_search_curves({"random": [0.1, 0.4, 0.4], "evolution": [0.2, 0.3, 0.5, 0.7]})
    random_line, evolution_line = ax.get_lines()
    assert list(random_line.get_xdata()) == [1, 2, 3] and list(random_line.get_ydata()) == [0.1, 0.4, 0.4]
    assert list(evolution_line.get_xdata()) == [1, 2, 3, 4] and evolution_line.get_label() == "evolution"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("evaluations", "best score so far")


def test_plot_reward_curve_draws_rewards_their_moving_average_and_the_baseline():
    rewards = [1.0, 3.0, 2.0, 6.0, 4.0]
    ax = plots.plot_reward_curve(rewards, baselines=[0.0, 1.0, 2.0], window=2)
    dots, mean, baseline = ax.get_lines()
    assert list(dots.get_xdata()) == [1, 2, 3, 4, 5] and list(dots.get_ydata()) == rewards
    assert dots.get_linestyle() == "None" and dots.get_marker() == "."
    # mean of 2: (1+3)/2, (3+2)/2, (2+6)/2, (6+4)/2 at steps 2..5
    assert list(mean.get_xdata()) == [2, 3, 4, 5] and list(mean.get_ydata()) == [2.0, 2.5, 4.0, 5.0]
    assert list(baseline.get_xdata()) == [1.0, 3.0, 5.0] and list(baseline.get_ydata()) == [0.0, 1.0, 2.0]
    assert mean.get_label() == "reward, mean of 2"
    # a window longer than the run shrinks to the run: one point, the overall mean
    (_, whole) = plots.plot_reward_curve(rewards, window=50).get_lines()
    assert list(whole.get_ydata()) == [pytest.approx(3.2)]
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plots.plot_reward_curve([])


def test_plot_alphas_shows_each_probability_in_its_cell():
    probs = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    ax = plots.plot_alphas(probs, ["edge0", "edge1"], ["conv", "pool", "skip"])
    assert np.array_equal(ax.images[0].get_array(), np.asarray(probs))
    assert [t.get_text() for t in ax.texts] == ["0.70", "0.20", "0.10", "0.10", "0.10", "0.80"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv", "pool", "skip"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["edge0", "edge1"]
    with pytest.raises(ValueError, match=r"shape \(2, 3\), but there are 3 rows"):
        plots.plot_alphas(probs, ["a", "b", "c"], ["conv", "pool", "skip"])


def test_plots_draw_on_a_given_axes():
    _, (left, right) = plt.subplots(1, 2)
    assert plots.plot_search_curves({"a": [1.0]}, ax=right) is right
    assert left.get_lines() == [] and len(right.get_lines()) == 1
