"""DARTS: Differentiable ARchiTecture Search (Liu, Simonyan & Yang, ICLR 2019), Lecture 11,
"Search Strategy: Gradient Descent".

Read top to bottom, the file follows the paper and the roles of the original code's files
(`operations.py`, `model_search.py`, `architect.py`, `genotypes.py`, `model.py`):

1. Continuous relaxation (Section 2.2, Eq. 2). Every edge (i, j) of a cell carries all candidate
   operations at once, mixed by a softmax over its architecture weights α^(i,j):

       ō^(i,j)(x) = Σ_{o ∈ O} exp(α_o^(i,j)) / Σ_{o' ∈ O} exp(α_o'^(i,j)) · o(x)          `MixedOp`

   O is DARTS's eight operations (`edgeai.spaces.ops.DARTS_OPS`: none, 3x3 max/avg pooling, skip,
   3x3/5x5 separable and dilated convolutions). A cell is a DAG of two input nodes (the outputs
   of the two previous cells) and `steps` intermediate nodes, each the sum of the mixed edges from
   all nodes before it; the cell's output concatenates the intermediate nodes. `SearchCell`,
   `SearchNetwork` (α as `nn.Parameter`s: one (edges, |O|) matrix for normal cells, one for
   reduction cells).

2. Bilevel optimisation (Section 2.3, Eq. 3-4, Algorithm 1): min_α L_val(w*(α), α) subject to
   w*(α) = argmin_w L_train(w, α), approximated by alternating one α step and one w step. The α
   gradient (Eq. 6-8), `Architect`:

       first order  (ξ = 0):  ∇_α L_val(w, α)
       second order (ξ = η):  ∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α),
                              w' = w − ξ ∇_w L_train(w, α)   (one virtual SGD step)
       with the Hessian-vector product by central finite differences, ε = 0.01 / ‖∇_{w'} L_val‖:
       ∇²_{α,w} L_train · v ≈ (∇_α L_train(w + εv, α) − ∇_α L_train(w − εv, α)) / 2ε

3. Deriving the discrete cell (Section 2.4): each intermediate node keeps its two strongest
   incoming edges, the strength of an edge being its largest softmax weight over the operations
   other than 'none', and on each kept edge the strongest operation other than 'none'.
   `derive_cell`, `Genotype`, and the stand-alone `Network` a genotype builds (the paper's
   evaluation network, `NetworkCIFAR` of the code, without the auxiliary head).

`DartsSearch` holds one search (supernet, both optimizers, the w learning-rate schedule, the
batch-order generators) and `darts_search(data, DartsConfig(...), seed=...)` runs it with a
checkpoint per epoch. The device is chosen once, by the caller; the step loop never waits for
the host (losses and accuracies are summed on the device and read once per epoch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgeai import distributed as dist
from edgeai.data import Dataset, Split, batches
from edgeai.estimation.train import compile_backend, compile_model, evaluate_accuracy, num_threads, resolve_device
from edgeai.spaces.ops import DARTS_OPS, FactorizedReduce, Identity, ReLUConvBN
from edgeai.strategies.gradient import GradientSearchResult, run_epochs

__all__ = [
    "PRIMITIVES",
    "MixedOp",
    "SearchCell",
    "SearchNetwork",
    "Genotype",
    "DARTS_V1",
    "DARTS_V2",
    "derive_cell",
    "Cell",
    "Network",
    "Architect",
    "DartsConfig",
    "DartsSearch",
    "darts_search",
]

PRIMITIVES: tuple[str, ...] = tuple(DARTS_OPS)  # genotypes.PRIMITIVES, in the same order
ORDERS = ("first", "second")


# --------------------------------------------------------------------------------------------
# 1. The continuous relaxation: mixed operation, search cell, search network
# --------------------------------------------------------------------------------------------


class MixedOp(nn.Module):
    """All candidate operations of one edge, mixed by the softmax of the edge's α (Eq. 2).

    As in the DARTS code, a pooling operation is followed by a BatchNorm without affine
    parameters, so that its output scale matches the convolutions' (their BN has affine=False in
    the search network too).
    """

    def __init__(self, c: int, stride: int, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.ops = nn.ModuleList()
        for name in primitives:
            op = DARTS_OPS[name](c, stride, False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # x: (N, C, H, W); weights = softmax(α) of this edge: (|O|,)
        return sum(w * op(x) for w, op in zip(weights, self.ops))  # ō(x) = Σ_o softmax(α)_o · o(x)


class SearchCell(nn.Module):
    """The cell DAG with a `MixedOp` on every edge (model_search.Cell).

    Nodes 0 and 1 are the previous two cells' outputs (brought to C channels by 1x1 convolutions,
    or a factorized reduction when the previous cell halved the resolution); node 2 + i is the sum
    of the mixed edges from all nodes before it; the output concatenates the last `multiplier`
    nodes. Edges are numbered node by node: node 2 has edges 0-1, node 3 edges 2-4, ...
    In a reduction cell the edges leaving the two input nodes have stride 2.
    """

    def __init__(self, steps: int, multiplier: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_pp, c, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.ops = nn.ModuleList()
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.ops.append(MixedOp(c, stride, primitives))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # s0: (N, c_pp, ...), s1: (N, c_p, H, W); weights: (edges, |O|)
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # 2 x (N, C, H, W)
        offset = 0
        for _ in range(self.steps):
            s = sum(self.ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)  # (N, C, H', W')
        return torch.cat(states[-self.multiplier:], dim=1)  # (N, multiplier·C, H', W')


def num_edges(steps: int) -> int:
    """Edges of a cell with `steps` intermediate nodes: 2 + 3 + ... + (steps + 1)."""
    return sum(2 + i for i in range(steps))


def _reductions(layers: int) -> tuple[int, int]:
    """Cells that halve the resolution and double the channels: at 1/3 and 2/3 of the depth."""
    return layers // 3, 2 * layers // 3


def _stack(in_channels: int, c: int, layers: int, stem_multiplier: int, make_cell: Callable) -> tuple[nn.Module, nn.ModuleList, int]:
    """The stem and the chain of `layers` cells both DARTS networks share: a 3x3 conv to
    stem_multiplier·c channels, then cells that each read the previous two outputs, with the
    channels doubled at the reduction cells. `make_cell(c_pp, c_p, c, reduction, reduction_prev)`
    builds one cell (with a `multiplier`: how many nodes its output concatenates). Returns the
    stem, the cells and the channels of the last cell's output."""
    c_curr = stem_multiplier * c
    stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
    c_pp, c_p, c_curr = c_curr, c_curr, c
    cells = nn.ModuleList()
    reduction_prev = False
    for i in range(layers):
        reduction = i in _reductions(layers)
        if reduction:
            c_curr *= 2
        cell = make_cell(c_pp, c_p, c_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        c_pp, c_p = c_p, cell.multiplier * c_curr
    return stem, cells, c_p


class SearchNetwork(nn.Module):
    """The supernet (model_search.Network): stem, `layers` search cells, global pooling, linear.

    All normal cells share α_normal (edges, |O|), all reduction cells α_reduce: the search looks
    for one cell of each type, which the final network stacks.
    """

    def __init__(self, c: int, num_classes: int, layers: int, steps: int = 4, multiplier: int = 4,
                 stem_multiplier: int = 3, in_channels: int = 3, primitives: Sequence[str] = PRIMITIVES):
        super().__init__()
        self.primitives = tuple(primitives)
        unknown = [p for p in self.primitives if p not in DARTS_OPS]
        if unknown or not self.primitives:
            raise ValueError(f"primitives must be a non-empty list of {list(DARTS_OPS)}, got unknown {unknown}")
        if "none" in self.primitives and len(self.primitives) == 1:
            raise ValueError("primitives must hold an operation other than 'none' to derive a cell from")
        if not 1 <= multiplier <= steps:
            raise ValueError(f"multiplier must be between 1 and steps={steps}, got {multiplier}")
        self.steps, self.multiplier = steps, multiplier
        self.stem, self.cells, c_p = _stack(
            in_channels, c, layers, stem_multiplier,
            lambda c_pp, c_p, c_curr, reduction, reduction_prev: SearchCell(
                steps, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev, primitives))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        k = num_edges(steps)
        # DARTS's code initialises α with 1e-3 · N(0, 1); the paper says zero ("zero initialization").
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(k, len(self.primitives)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(k, len(self.primitives)))

    def arch_parameters(self) -> list[nn.Parameter]:
        """α: what the architecture step optimises."""
        return [self.alpha_normal, self.alpha_reduce]

    def weights(self) -> list[nn.Parameter]:
        """w: every other parameter (what the weight step optimises)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, in_channels, H, W)
        s0 = s1 = self.stem(x)  # (N, stem_multiplier·C, H, W)
        w_normal = F.softmax(self.alpha_normal, dim=-1)  # (edges, |O|)
        w_reduce = F.softmax(self.alpha_reduce, dim=-1)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.classifier(self.pool(s1).flatten(1))  # (N, num_classes)

    def genotype(self) -> "Genotype":
        """The discrete cells α points to now (Section 2.4)."""
        concat = tuple(range(2 + self.steps - self.multiplier, self.steps + 2))
        with torch.no_grad():
            normal = derive_cell(F.softmax(self.alpha_normal, dim=-1), self.steps, self.primitives)
            reduce = derive_cell(F.softmax(self.alpha_reduce, dim=-1), self.steps, self.primitives)
        return Genotype(normal, concat, reduce, concat)


# --------------------------------------------------------------------------------------------
# 3. Genotypes: the discrete cells, derived from α, and the stand-alone network they build
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Genotype:
    """A pair of discrete cells (genotypes.Genotype): for each intermediate node two
    `(operation, input node)` pairs, in node order, and the nodes the output concatenates.
    Plain data: `to_dict()` / `from_dict()` survive a JSON round trip."""

    normal: tuple[tuple[str, int], ...]  # 2 · steps (op, input) pairs of the normal cell
    normal_concat: tuple[int, ...]  # nodes concatenated into the normal cell's output
    reduce: tuple[tuple[str, int], ...]  # the same for the reduction cell
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        for kind in ("normal", "reduce"):
            gene = tuple((str(op), int(j)) for op, j in getattr(self, kind))
            concat = tuple(int(i) for i in getattr(self, f"{kind}_concat"))
            object.__setattr__(self, kind, gene)
            object.__setattr__(self, f"{kind}_concat", concat)
            if not gene or len(gene) % 2:
                raise ValueError(f"Genotype.{kind} must hold two (op, input) pairs per node, got {len(gene)} pairs")
            for e, (op, j) in enumerate(gene):
                if op not in DARTS_OPS:
                    raise ValueError(f"Genotype.{kind}[{e}]: unknown operation {op!r}; operations: {list(DARTS_OPS)}")
                if not 0 <= j < 2 + e // 2:
                    raise ValueError(f"Genotype.{kind}[{e}]: node {2 + e // 2} cannot take node {j} as input "
                                     f"(allowed: 0..{1 + e // 2})")
            steps = len(gene) // 2
            if not concat or any(not 0 <= i < 2 + steps for i in concat):
                raise ValueError(f"Genotype.{kind}_concat must list nodes in 0..{1 + steps}, got {concat}")

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def to_dict(self) -> dict:
        return {
            "normal": [[op, j] for op, j in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, j] for op, j in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Genotype":
        return cls(data["normal"], data["normal_concat"], data["reduce"], data["reduce_concat"])


# The published cells (genotypes.py of the DARTS code): first-order and second-order DARTS on CIFAR-10.
DARTS_V1 = Genotype(
    normal=(("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)),
    normal_concat=(2, 3, 4, 5),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)),
    reduce_concat=(2, 3, 4, 5),
)
DARTS_V2 = Genotype(
    normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)),
    normal_concat=(2, 3, 4, 5),
    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)),
    reduce_concat=(2, 3, 4, 5),
)


def derive_cell(weights: torch.Tensor, steps: int, primitives: Sequence[str] = PRIMITIVES) -> tuple[tuple[str, int], ...]:
    """The discrete cell from softmax(α) (edges, |O|), as model_search.Network.genotype's `_parse`:
    for each intermediate node, the two incoming edges whose strongest non-'none' operation is
    strongest (ties: the earlier edge), and on each the strongest non-'none' operation."""
    primitives = tuple(primitives)
    weights = torch.as_tensor(weights).detach().cpu()
    if weights.shape != (num_edges(steps), len(primitives)):
        raise ValueError(f"weights must be (edges, ops) = ({num_edges(steps)}, {len(primitives)}) for "
                         f"steps={steps}, got {tuple(weights.shape)}")
    keep = [k for k, name in enumerate(primitives) if name != "none"]
    if not keep:
        raise ValueError("no operation other than 'none' to derive a cell from")
    gene, start = [], 0
    for i in range(steps):
        w = weights[start : start + 2 + i].tolist()  # the node's incoming edges
        strength = lambda j: max(w[j][k] for k in keep)  # noqa: E731
        edges = sorted(range(2 + i), key=lambda j: -strength(j))[:2]  # stable: ties keep the earlier edge
        for j in edges:
            k_best = max(keep, key=lambda k: (w[j][k], -k))  # the first of equal weights, as `_parse`
            gene.append((primitives[k_best], j))
        start += 2 + i
    return tuple(gene)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Drop a whole path for a random subset of the batch (DARTS utils.drop_path, from FractalNet)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """A discrete cell built from a genotype (model.Cell): two operations per node, summed."""

    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_pp, c)
        else:
            self.preprocess0 = ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        gene, concat = (genotype.reduce, genotype.reduce_concat) if reduction else (genotype.normal, genotype.normal_concat)
        self.indices = [j for _, j in gene]
        self.concat = list(concat)
        self.multiplier = len(concat)
        self.ops = nn.ModuleList(
            DARTS_OPS[name](c, 2 if reduction and j < 2 else 1, True) for name, j in gene
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # 2 x (N, C, H, W)
        for i in range(len(self.ops) // 2):
            h = []
            for e in (2 * i, 2 * i + 1):
                out = self.ops[e](states[self.indices[e]])
                if self.training and not isinstance(self.ops[e], Identity):
                    out = drop_path(out, drop_prob)
                h.append(out)
            states.append(h[0] + h[1])  # (N, C, H', W')
        return torch.cat([states[i] for i in self.concat], dim=1)  # (N, multiplier·C, H', W')


class Network(nn.Module):
    """The evaluation network of a genotype (model.NetworkCIFAR without the auxiliary head):
    stem, `layers` cells (reduction cells at 1/3 and 2/3 of the depth), pooling, linear.
    The paper's CIFAR-10 network: c=36, layers=20 (3.3M parameters for DARTS_V2)."""

    def __init__(self, genotype: Genotype, c: int, num_classes: int, layers: int, in_channels: int = 3,
                 stem_multiplier: int = 3, drop_path_prob: float = 0.0):
        super().__init__()
        if not isinstance(genotype, Genotype):
            raise TypeError(f"genotype must be a Genotype (Genotype.from_dict(d) for plain data), got {type(genotype).__name__}")
        self.drop_path_prob = drop_path_prob
        self.stem, self.cells, c_p = _stack(
            in_channels, c, layers, stem_multiplier,
            lambda c_pp, c_p, c_curr, reduction, reduction_prev: Cell(
                genotype, c_pp, c_p, c_curr, reduction, reduction_prev))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # (N, stem_multiplier·C, H, W)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return self.classifier(self.pool(s1).flatten(1))  # (N, num_classes)


# --------------------------------------------------------------------------------------------
# 2. The bilevel optimisation: the architecture step
# --------------------------------------------------------------------------------------------


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


class Architect:
    """The α step of DARTS (architect.py): Adam on ∇_α of the validation loss, first or second order.

    `loss(x, y)` is the supernet's training loss (its forward pass, under autocast if wanted);
    `w_optimizer` the SGD optimizer of the weights, whose learning rate ξ, momentum buffers and
    weight decay define the virtual step w' of the second-order gradient, exactly as the next real
    step would move w: w' = w − ξ (μ · buf + ∇_w L_train + λ w).
    """

    def __init__(self, model: SearchNetwork, w_optimizer: torch.optim.SGD, loss: Callable,
                 lr: float = 3e-4, betas: tuple[float, float] = (0.5, 0.999), weight_decay: float = 1e-3,
                 reduce: Callable[[list], list] | None = None):
        self.model, self.w_optimizer, self.loss = model, w_optimizer, loss
        self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        # data-parallel: every gradient computed here is averaged over the ranks before use, so
        # that α stays identical on every rank (`edgeai.distributed.all_reduce_mean`)
        self.reduce = (lambda grads: grads) if reduce is None else reduce

    def _grads(self, loss: torch.Tensor, params) -> list[torch.Tensor]:
        return self.reduce(_grads(loss, params))

    def first_order_gradient(self, x_val, y_val) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """∇_α L_val(w, α): the weights are taken as already optimal (ξ = 0)."""
        loss = self.loss(x_val, y_val)
        return loss, self._grads(loss, self.model.arch_parameters())

    def second_order_gradient(self, x_train, y_train, x_val, y_val, xi: float, r: float = 1e-2):
        """∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α) (Eq. 7), with the
        Hessian-vector product by central differences (Eq. 8), ε = r / ‖∇_{w'} L_val(w', α)‖.
        The weights are changed in place and restored (no copy of the model, and no host sync:
        ε stays a device tensor)."""
        alphas, weights = self.model.arch_parameters(), self.model.weights()
        group = self.w_optimizer.param_groups[0]
        momentum, weight_decay = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        backup = [w.detach().clone() for w in weights]

        # the virtual step w' = w − ξ (μ · buf + ∇_w L_train(w, α) + λ w)   (_compute_unrolled_model)
        g_train = self._grads(self.loss(x_train, y_train), weights)
        with torch.no_grad():
            for w, g in zip(weights, g_train):
                step = g + weight_decay * w
                buf = self.w_optimizer.state.get(w, {}).get("momentum_buffer")
                if buf is not None and momentum:
                    step = step + momentum * buf
                w.sub_(xi * step)

        # ∇_α L_val(w', α) and v = ∇_{w'} L_val(w', α)
        loss_val = self.loss(x_val, y_val)
        grads = self._grads(loss_val, [*alphas, *weights])
        d_alpha, v = grads[: len(alphas)], grads[len(alphas) :]

        # ∇²_{α,w} L_train(w, α) · v ≈ (∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / 2ε, w± = w ± εv
        eps = r / torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in v]))
        with torch.no_grad():
            for w, b, g in zip(weights, backup, v):
                w.copy_(b + eps * g)
        g_plus = self._grads(self.loss(x_train, y_train), alphas)
        with torch.no_grad():
            for w, b, g in zip(weights, backup, v):
                w.copy_(b - eps * g)
        g_minus = self._grads(self.loss(x_train, y_train), alphas)
        with torch.no_grad():
            for w, b in zip(weights, backup):
                w.copy_(b)
        return loss_val, [da - xi * (gp - gm) / (2 * eps) for da, gp, gm in zip(d_alpha, g_plus, g_minus)]

    def step(self, x_train, y_train, x_val, y_val, xi: float, order: str = "first", r: float = 1e-2) -> torch.Tensor:
        """One Adam step on α; returns the validation loss (a device tensor)."""
        if order == "first":
            loss, grads = self.first_order_gradient(x_val, y_val)
        elif order == "second":
            loss, grads = self.second_order_gradient(x_train, y_train, x_val, y_val, xi, r)
        else:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.optimizer.zero_grad(set_to_none=True)
        for alpha, g in zip(self.model.arch_parameters(), grads):
            alpha.grad = g
        self.optimizer.step()
        return loss.detach()


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


@dataclass
class DartsConfig:
    """One DARTS search. Defaults: the paper's CIFAR-10 search (Liu et al. 2019, Section 5.1, and
    `train_search.py` of the code). The course's digits notebook uses a much smaller network."""

    init_channels: int = 16  # C of the first cells ("initial number of channels 16")
    layers: int = 8  # cells in the search network ("a small network of 8 cells")
    steps: int = 4  # intermediate nodes per cell
    multiplier: int = 4  # how many of the last nodes the cell's output concatenates
    stem_multiplier: int = 3  # stem width = stem_multiplier · init_channels
    primitives: tuple[str, ...] = PRIMITIVES  # candidate operations on every edge
    epochs: int = 50  # "trained using DARTS for 50 epochs"
    batch_size: int = 64  # "batch size 64 (for both the training and validation iterations)"
    lr: float = 0.025  # SGD on w: initial learning rate η_w ...
    lr_min: float = 0.001  # ... cosine-annealed to this (the code; the paper says "down to zero")
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0  # clip ‖∇_w‖ (the code's `grad_clip`)
    arch_lr: float = 3e-4  # Adam on α: η_α
    arch_betas: tuple[float, float] = (0.5, 0.999)  # "momentum β = (0.5, 0.999)"
    arch_weight_decay: float = 1e-3
    order: str = "first"  # "first" (ξ = 0) or "second" (ξ = η_w, finite-difference Hessian)
    fd_r: float = 0.01  # second order: finite-difference step ε = fd_r / ‖∇_w' L_val‖ (the code's 0.01)
    train_portion: float = 0.5  # fraction of the training split for w; the rest trains α
    autocast: bool | None = None  # bf16 autocast of the forward passes; None: on for CUDA
    channels_last: bool = False  # NHWC memory format (faster convolutions on recent GPUs)
    compile: bool | str = False  # torch.compile the supernet's forward (True: inductor; or a backend name)

    def __post_init__(self):
        compile_backend(self.compile, "DartsConfig.compile")
        self.primitives = tuple(self.primitives)
        self.arch_betas = tuple(self.arch_betas)
        for name in ("init_channels", "layers", "steps", "multiplier", "stem_multiplier", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DartsConfig.{name} must be a positive integer, got {value!r}")
        if self.multiplier > self.steps:
            raise ValueError(f"DartsConfig.multiplier={self.multiplier} cannot exceed steps={self.steps}")
        for name in ("lr", "arch_lr", "grad_clip", "fd_r"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DartsConfig.{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"DartsConfig.lr_min must be in [0, lr={self.lr}], got {self.lr_min!r}")
        if self.order not in ORDERS:
            raise ValueError(f"DartsConfig.order must be one of {ORDERS}, got {self.order!r}")
        if not 0 < self.train_portion < 1:
            raise ValueError(f"DartsConfig.train_portion must be strictly between 0 and 1, got {self.train_portion!r}")
        unknown = [p for p in self.primitives if p not in DARTS_OPS]
        if unknown or all(p == "none" for p in self.primitives):
            raise ValueError(f"DartsConfig.primitives must be operations of {list(DARTS_OPS)} (not only 'none'), "
                             f"got {list(self.primitives)}")


class DartsSearch:
    """One DARTS search in progress: the supernet, the w and α optimizers, the w schedule and the
    mini-batch orders, all created from `seed` on the CPU and then moved to `device` (chosen once,
    by the caller). `state_dict()` holds all of it, so a checkpointed search continues bit-exactly.

    One step (train_search.py's `train`, Algorithm 1 of the paper):
        1. α step on a batch of the α half (Architect.step, first or second order)
        2. w step on a batch of the w half: SGD with momentum, weight decay, gradient clipping
    The learning rate follows a cosine schedule per epoch.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, config: DartsConfig, seed: int,
                 device: str | torch.device = "cpu", distributed: bool | None = None):
        if not isinstance(config, DartsConfig):
            raise TypeError(f"config must be a DartsConfig, got {type(config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.config, self.seed = config, seed
        self.device = resolve_device(device)
        self.autocast = self.device.type == "cuda" if config.autocast is None else bool(config.autocast)
        in_channels = int(input_shape[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = SearchNetwork(config.init_channels, num_classes, config.layers, config.steps,
                                       config.multiplier, config.stem_multiplier, in_channels, config.primitives)
        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.w_optimizer = torch.optim.SGD(self.model.weights(), lr=config.lr, momentum=config.momentum,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, T_max=config.epochs,
                                                                    eta_min=config.lr_min)
        # data-parallel under torchrun (see edgeai.distributed): the w step through DDP (which
        # broadcasts rank 0's w and α now), every α gradient averaged over the ranks
        self.distributed = dist.active() if distributed is None else bool(distributed)
        if self.distributed and not dist.active():
            raise ValueError("distributed=True needs a torch.distributed process group of more than one rank (torchrun)")
        self.ddp = dist.wrap(self.model, self.device) if self.distributed else None
        # the forward passes of both steps, compiled on request (they share the model's w and α)
        self.step_model = compile_model(self.model, config.compile)
        self.step_ddp = None if self.ddp is None else compile_model(self.ddp, config.compile)
        self.architect = Architect(self.model, self.w_optimizer, self.loss, config.arch_lr, config.arch_betas,
                                   config.arch_weight_decay, reduce=dist.all_reduce_mean if self.distributed else None)
        self.w_order = torch.Generator().manual_seed(seed)  # mini-batch order of the w half
        self.a_order = torch.Generator().manual_seed(seed + 1)  # and of the α half
        self.epoch = 0

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L(w, α) on a batch, through the plain module (the α step differentiates it with autograd)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return F.cross_entropy(self.step_model(x), y)

    def weight_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The w step's loss and logits (N, classes); through DDP when data-parallel, so that its
        backward averages ∇w over the ranks."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = (self.step_model if self.ddp is None else self.step_ddp)(x)  # (N, classes)
            return F.cross_entropy(logits, y), logits

    def _prepare(self, split: Split) -> Split:
        split = split.to(self.device)
        if self.config.channels_last:
            split = Split(split.x.contiguous(memory_format=torch.channels_last), split.y)
        return split

    def train_epoch(self, w_split: Split, a_split: Split) -> dict:
        """One epoch: as many (α step, w step) pairs as the smaller half has full batches."""
        cfg = self.config
        w_split, a_split = self._prepare(w_split), self._prepare(a_split)
        batch_size = min(cfg.batch_size, len(w_split), len(a_split))
        xi = self.scheduler.get_last_lr()[0]  # η_w of this epoch (a Python float: no sync)
        weights = self.model.weights()
        self.model.train()
        sums = torch.zeros(3, device=self.device)  # w loss, w correct, α loss: summed on the device
        steps = 0
        pairs = zip(batches(w_split, batch_size, rng=self.w_order, drop_last=True),
                    batches(a_split, batch_size, rng=self.a_order, drop_last=True))
        for (x, y), (x_a, y_a) in pairs:
            if self.distributed:  # this rank's shard of each global batch (same permutations everywhere)
                x, y, x_a, y_a = (dist.shard(t) for t in (x, y, x_a, y_a))
            a_loss = self.architect.step(x, y, x_a, y_a, xi, cfg.order, cfg.fd_r)  # 1. α
            loss, logits = self.weight_loss(x, y)
            self.w_optimizer.zero_grad(set_to_none=True)  # 2. w
            loss.backward()
            nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
            self.w_optimizer.step()
            sums += torch.stack([loss.detach().float(), (logits.argmax(1) == y).sum().float(), a_loss.float()])
            steps += 1
        self.scheduler.step()
        self.epoch += 1
        if self.distributed:
            sums = dist.all_reduce_mean([sums])[0] * dist.world_size()  # summed over the ranks' shards
            sums[0] /= dist.world_size()  # losses: the mean over the ranks
            sums[2] /= dist.world_size()
        total = sums.tolist()  # the one host sync of the epoch
        return {
            "epoch": self.epoch,
            "train_loss": total[0] / max(steps, 1),
            "train_accuracy": total[1] / max(steps * batch_size, 1),
            "arch_loss": total[2] / max(steps, 1),
            "lr": xi,
            "steps": steps,
        }

    def evaluate(self, split: Split) -> float:
        """The supernet's accuracy (softmax-mixed cells, BN running statistics)."""
        return evaluate_accuracy(self.model, self._prepare(split), autocast=self.autocast)

    def genotype(self) -> Genotype:
        return self.model.genotype()

    def derive(self) -> dict:
        return self.genotype().to_dict()

    def arch_probabilities(self) -> dict:
        with torch.no_grad():
            return {"normal": F.softmax(self.model.alpha_normal, -1).tolist(),
                    "reduce": F.softmax(self.model.alpha_reduce, -1).tolist(),
                    "primitives": list(self.model.primitives)}

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),  # w, α and the BN running statistics
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.architect.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "w_order": self.w_order.get_state(),
            "a_order": self.a_order.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.architect.optimizer.load_state_dict(state["a_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.w_order.set_state(state["w_order"])
        self.a_order.set_state(state["a_order"])


def darts_search(
    data: Dataset,
    config: DartsConfig | None = None,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    callback=None,
    distributed: bool | None = None,
) -> GradientSearchResult:
    """Run DARTS on `data` (`edgeai.data.digits()`, `cifar10(...)`): the training split is cut in
    two (w and α halves, `config.train_portion`), the supernet trains `config.epochs` epochs, and
    the result holds one trial per epoch (the genotype derived then, scored by the supernet's
    accuracy on `data.val`), `result.arch` (the final genotype as a dict: `Genotype.from_dict`)
    and softmax(α) per epoch. `threads`: CPU threads during the search (1 is fastest for tiny
    networks). `checkpoint`/`resume`: see `edgeai.strategies.gradient.run_epochs`. Under torchrun
(`distributed`, None: when a process group of several ranks exists) the search is
data-parallel: `config.batch_size` is the global batch, split over the ranks (see
`edgeai.distributed`); every rank derives the same genotype, rank 0 writes the checkpoint."""
    config = DartsConfig() if config is None else config
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be an edgeai.data.Dataset (e.g. digits()), got {type(data).__name__}")
    device = resolve_device(device)
    with num_threads(threads):
        data = data.to(device)  # once: mini-batches are sliced where the data lies
        searcher = DartsSearch(data.input_shape, data.num_classes, config, seed, device, distributed=distributed)
        return run_epochs(searcher, data, config.epochs, name="DARTS", seed=seed, config=asdict(config),
                          train_portion=config.train_portion, checkpoint=checkpoint, resume=resume,
                          progress=progress, callback=callback)
