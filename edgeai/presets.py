"""Named settings for `edgeai search --preset NAME`: the papers' settings for the full-size runs
(CIFAR-10 on a GPU) and small settings that run anywhere (digits on a CPU).

A preset is plain data: which strategy, space and dataset, the search budget, and the
strategy's settings as the fields of its config dataclass (`DartsConfig`, `ProxylessConfig`,
`SupernetTrainConfig`, `ReinforceConfig`, ...). Each full-size preset cites where its numbers
come from; where the code departs from the paper, the NOTE says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Preset", "PRESETS", "STRATEGIES", "DATASETS", "default_preset"]

STRATEGIES = ("grid", "random", "evolution", "reinforce", "darts", "proxyless")
DATASETS = ("digits", "cifar10")


@dataclass(frozen=True)
class Preset:
    """One named search setting."""

    name: str
    strategy: str  # one of STRATEGIES
    dataset: str  # one of DATASETS
    space: str  # "network", "width-resolution", "nasnet", "topology", "darts", "proxyless"
    description: str
    source: str = ""  # where the numbers come from
    budget: int | None = None  # black-box strategies: evaluations (architectures trained or scored)
    epochs: int | None = None  # gradient strategies: search epochs; black-box: training epochs per candidate
    tier: str | None = None  # device tier whose memory limits constrain the search ("tiny", "mobile", "cloud")
    strategy_settings: dict = field(default_factory=dict)  # keyword arguments of the strategy / its config
    train_settings: dict = field(default_factory=dict)  # how candidates (or the supernet) are trained
    space_settings: dict = field(default_factory=dict)  # NetworkSpaceConfig / NASNetConfig fields


PRESETS: dict[str, Preset] = {}


def _add(p: Preset) -> None:
    PRESETS[p.name] = p


# ------------------------------------------------------------------ gradient-based (a supernet)

_add(Preset(
    "darts-cifar10", "darts", "cifar10", "darts",
    "DARTS search on CIFAR-10 with the paper's settings (first order; --order second for DARTS 2nd order)",
    source="Liu, Simonyan & Yang 2019, Section 5.1 and train_search.py: 8 cells, 16 initial channels, "
           "batch 64, 50 epochs, SGD lr 0.025 cosine to 0.001, momentum 0.9, weight decay 3e-4; "
           "alpha by Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; half of the training set "
           "trains alpha; gradient clip 5",
    epochs=50,
    strategy_settings=dict(init_channels=16, layers=8, batch_size=64, epochs=50, lr=0.025, lr_min=0.001,
                           momentum=0.9, weight_decay=3e-4, arch_lr=3e-4, arch_weight_decay=1e-3,
                           train_portion=0.5, grad_clip=5.0, order="first", channels_last=True),
))
_add(Preset(
    "darts-digits", "darts", "digits", "darts",
    "a small first-order DARTS search on the 8x8 digits (about a minute on a laptop CPU)",
    source="DARTS's settings scaled down: 3 cells of 8 channels; alpha's learning rate raised to 0.03 "
           "because 8 short epochs would leave 3e-4 nearly uniform",
    epochs=8,
    strategy_settings=dict(init_channels=8, layers=3, steps=4, multiplier=4, batch_size=64, epochs=8,
                           lr=0.05, lr_min=0.001, arch_lr=0.03, order="first",
                           channels_last=True),  # NHWC: depthwise and dilated convolutions ~1.3-1.7x faster on CPU too
))
_add(Preset(
    "proxyless-cifar10", "proxyless", "cifar10", "proxyless",
    "ProxylessNAS-style search on CIFAR-10: MBConv k3/5/7 x t3/6 per layer, binarized paths, "
    "latency loss from a lookup table measured on this device",
    source="Cai, Zhu & Han 2019 and their search/imagenet_arch_search.py (40 warm-up + 120 search epochs, "
           "SGD lr 0.025 Nesterov, Adam on alpha lr 1e-3 betas (0, 0.999), one alpha step per 5 weight "
           "steps, 'mul#log' latency loss alpha 0.2, beta 0.3). NOTE: the paper searches on ImageNet; "
           "for 32x32 CIFAR images the stem keeps the resolution (stride 1)",
    epochs=160,
    strategy_settings=dict(stem_stride=1, epochs=160, warmup_epochs=40, batch_size=256, lr=0.025,
                           arch_lr=1e-3, arch_every=5, loss="mul", reg_alpha=0.2, reg_beta=0.3,
                           channels_last=True),
))
_add(Preset(
    "proxyless-digits", "proxyless", "digits", "proxyless",
    "a small ProxylessNAS search on the digits with a latency table measured on this CPU",
    source="the paper's losses and gates on a 3-stage supernet for 8x8 inputs",
    epochs=6,
    strategy_settings=dict(stem_channels=8, stem_stride=1, first_channels=8, stages=((16, 2, 1), (24, 2, 2)),
                           feature_channels=0, epochs=6, warmup_epochs=2, batch_size=32, lr=0.05,
                           arch_lr=0.01, arch_every=1, loss="add", reg_lambda=0.1, channels_last=True),
))

# ------------------------------------------------------------------ black-box strategies

_add(Preset(
    "ofa-evolution-cifar10", "evolution", "cifar10", "network",
    "once-for-all-style: train a weight-sharing supernet over depth/kernel/expand/width/resolution, then "
    "evolution over its sub-networks, scored without retraining (BN recalibrated)",
    source="Cai et al. 2019 (once-for-all), EvolutionFinder: population 100, 25 parents, mutation "
           "probability 0.1, mutation ratio 0.5, 500 generations. NOTE: once-for-all scores candidates "
           "with an accuracy predictor trained on 16K sub-networks; here each candidate is scored by "
           "the supernet itself on the validation split (budget counts distinct candidates)",
    budget=50_000, tier="mobile",
    strategy_settings=dict(population_size=100, parents=25, mutate_prob=0.1, mutation_ratio=0.5),
    train_settings=dict(rule="sandwich", epochs=120, warmup_epochs=20, batch_size=256, lr=0.1, num_random=2),
    space_settings=dict(stages=((24, 1), (32, 2), (64, 2), (96, 1), (160, 2), (320, 1)),
                        resolutions=(24, 28, 32), stem_stride=1, in_channels=3, num_classes=10),
))
_add(Preset(
    "ofa-evolution-digits", "evolution", "digits", "network",
    "a weight-sharing supernet on the digits and evolution over its sub-networks (CPU, minutes)",
    source="once-for-all's evolution settings scaled down (population 20, 5 parents)",
    budget=200, tier="tiny",
    strategy_settings=dict(population_size=20, parents=5, mutate_prob=0.1, mutation_ratio=0.5),
    train_settings=dict(rule="uniform", epochs=10, batch_size=64, lr=0.05, num_random=2),
    space_settings=dict(resolutions=(8, 16)),
))
_add(Preset(
    "tinynas-digits", "evolution", "digits", "network",
    "TinyNAS-style hardware-aware evolution on the digits under the Tiny tier (320 KB SRAM, 1 MB Flash; "
    "float32 models), each candidate trained briefly (the `edgeai demo` search)",
    source="Lin et al. 2020 (MCUNet): search under the device's SRAM and Flash limits",
    budget=12, epochs=3, tier="tiny",
    strategy_settings=dict(population_size=6, parents=2, mutate_prob=0.2),
    train_settings=dict(train_size=192, batch_size=12, channels_last=True),
    space_settings=dict(resolutions=(8, 16)),
))
_add(Preset(
    "tinynas-cifar10", "evolution", "cifar10", "network",
    "TinyNAS-style hardware-aware evolution on CIFAR-10 under 320 KB / 1 MB (int8 deployment), "
    "each candidate trained for a short schedule on the GPU",
    source="Lin et al. 2020 (MCUNet): 320 KB SRAM, 1 MB Flash; once-for-all's evolution settings",
    budget=500, epochs=10, tier="tiny",
    strategy_settings=dict(population_size=50, parents=12, mutate_prob=0.1, mutation_ratio=0.5),
    train_settings=dict(batch_size=256, lr=0.1, label_smoothing=0.1),
    space_settings=dict(stages=((24, 1), (32, 2), (64, 2), (96, 1), (160, 2)), widths=(0.5, 0.75, 1.0),
                        resolutions=(24, 28, 32), stem_stride=1, last_channels=0, in_channels=3,
                        num_classes=10),
))
_add(Preset(
    "nasnet-rl-cifar10", "reinforce", "cifar10", "nasnet",
    "the RL controller (LSTM, REINFORCE) on the NASNet cell space, each child trained briefly on CIFAR-10",
    source="Zoph & Le 2017 / Zoph et al. 2018: 2-layer LSTM of 35 units, Adam lr 6e-4, moving-average "
           "baseline; B = 5 blocks. NOTE: the papers train each child for 20 epochs on 450 GPUs; "
           "the proxy here trains 4 epochs of a 2-cells-per-stage network",
    budget=500, epochs=4,
    strategy_settings=dict(),
    train_settings=dict(batch_size=128, lr=0.05),
    space_settings=dict(channels=16, cells_per_stage=2),
))
_add(Preset(
    "nasnet-rl-digits", "reinforce", "digits", "nasnet",
    "the RL controller on the NASNet cell space with children trained briefly on the digits",
    source="Zoph & Le 2017 controller; short proxy training",
    budget=20, epochs=2,
    train_settings=dict(train_size=192, batch_size=12, channels_last=True),
    space_settings=dict(channels=4, cells_per_stage=1),
))
_add(Preset(
    "random-digits", "random", "digits", "network",
    "random search over the digits network space, each candidate trained briefly",
    source="Bergstra & Bengio 2012", budget=12, epochs=3,
    train_settings=dict(train_size=192, batch_size=12, channels_last=True), space_settings=dict(resolutions=(8, 16)),
))
_add(Preset(
    "random-cifar10", "random", "cifar10", "network",
    "random search over the CIFAR-10 network space, each candidate trained for a short schedule",
    source="Bergstra & Bengio 2012", budget=200, epochs=10, tier="tiny",
    train_settings=dict(batch_size=256, lr=0.1, label_smoothing=0.1),
    space_settings=PRESETS["tinynas-cifar10"].space_settings,
))
_add(Preset(
    "grid-digits", "grid", "digits", "width-resolution",
    "the lecture's grid: width x resolution of one digits network, each cell trained briefly",
    source="Lecture 11, Grid Search; EfficientNet's scaling dimensions", epochs=3,
    train_settings=dict(train_size=192, batch_size=12, channels_last=True),
    space_settings=dict(widths=(0.5, 1.0, 1.5), resolutions=(8, 16)),
))
_add(Preset(
    "grid-cifar10", "grid", "cifar10", "width-resolution",
    "the lecture's grid on CIFAR-10: width x resolution of one network, each cell trained on the GPU",
    source="Lecture 11, Grid Search", epochs=20,
    train_settings=dict(batch_size=256, lr=0.1, label_smoothing=0.1),
    space_settings=dict(PRESETS["tinynas-cifar10"].space_settings, widths=(0.5, 0.75, 1.0), resolutions=(24, 28, 32)),
))


def default_preset(strategy: str, dataset: str) -> Preset:
    """The preset used when `--preset` is not given."""
    names = {
        ("darts", "cifar10"): "darts-cifar10", ("darts", "digits"): "darts-digits",
        ("proxyless", "cifar10"): "proxyless-cifar10", ("proxyless", "digits"): "proxyless-digits",
        ("evolution", "cifar10"): "ofa-evolution-cifar10", ("evolution", "digits"): "tinynas-digits",
        ("reinforce", "cifar10"): "nasnet-rl-cifar10", ("reinforce", "digits"): "nasnet-rl-digits",
        ("random", "cifar10"): "random-cifar10", ("random", "digits"): "random-digits",
        ("grid", "cifar10"): "grid-cifar10", ("grid", "digits"): "grid-digits",
    }
    if (strategy, dataset) not in names:
        raise ValueError(f"no preset for strategy {strategy!r} on {dataset!r}; strategies: {list(STRATEGIES)}, "
                         f"datasets: {list(DATASETS)}")
    return PRESETS[names[(strategy, dataset)]]
