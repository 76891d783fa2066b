"""Efficiency metrics of neural networks, in the lecture's notation.

Lecture 11, "Efficiency of Neural Networks" and "Review Primitive Operations":

    memory related       #parameters, model size, total / peak #activations
    computation related  MAC, FLOP (FLOPS), OP (OPS)

Notation (the slides' table):

    c_i, c_o   input / output channels        n          batch size
    h_i, h_o   input / output height          g          groups
    w_i, w_o   input / output width           k_h, k_w   kernel height / width

As in the lecture, bias is ignored in the per-layer formulas; `profile` measures whole models
and counts every parameter element (what papers report), see its docstring.

The formulas are small pure functions; `profile(model, x)` measures a real model with one
forward pass and is the oracle the formulas (and every analytic cost in the library) are
tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "linear_params",
    "linear_macs",
    "conv_params",
    "conv_macs",
    "depthwise_conv_params",
    "depthwise_conv_macs",
    "pointwise_conv_params",
    "pointwise_conv_macs",
    "conv_output_size",
    "flops",
    "ops",
    "per_second",
    "model_size",
    "num_activations",
    "LayerProfile",
    "Profile",
    "profile",
]


# --------------------------------------------------------------------------------------------
# Argument checks: a clear ValueError naming the argument, never a silently wrong number.
# --------------------------------------------------------------------------------------------


def _integer(name: str, value: Any, minimum: int) -> int:
    if type(value) is int and value >= minimum:  # the common case, fast: cost models call this a lot
        return value
    if isinstance(value, bool) or isinstance(value, float) or not hasattr(value, "__index__"):
        kind = "positive" if minimum > 0 else "non-negative"
        raise TypeError(f"{name} must be a {kind} integer, got {value!r} ({type(value).__name__})")
    value = int(value.__index__())
    if value < minimum:
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value}")
    return value


def _positive_int(name: str, value: Any) -> int:
    return _integer(name, value, 1)


def _non_negative_int(name: str, value: Any) -> int:
    return _integer(name, value, 0)


def _check_groups(c_i: int, c_o: int, g: int) -> None:
    if c_i % g:
        raise ValueError(f"groups g={g} does not divide c_i={c_i}; g must divide both c_i and c_o")
    if c_o % g:
        raise ValueError(f"groups g={g} does not divide c_o={c_o}; g must divide both c_i and c_o")


# --------------------------------------------------------------------------------------------
# The lecture's tables: #parameters and #MACs per layer (bias ignored)
# --------------------------------------------------------------------------------------------


def linear_params(c_i: int, c_o: int) -> int:
    """#parameters of a linear layer = c_o · c_i   (weights W: (c_o, c_i); bias ignored)"""
    c_i, c_o = _positive_int("c_i", c_i), _positive_int("c_o", c_o)
    return c_o * c_i


def linear_macs(c_i: int, c_o: int, n: int = 1) -> int:
    """MACs of a linear layer = c_o · c_i   per sample; n · c_o · c_i for a batch of n"""
    c_i, c_o, n = _positive_int("c_i", c_i), _positive_int("c_o", c_o), _positive_int("n", n)
    return n * c_o * c_i


def conv_params(c_i: int, c_o: int, k_h: int, k_w: int, g: int = 1) -> int:
    """#parameters of a (grouped) convolution = c_o · c_i/g · k_h · k_w

    Weights W: (c_o/g · g, c_i/g, k_h, k_w); g = 1 is the ordinary convolution
    c_o · c_i · k_h · k_w. Bias ignored.
    """
    c_i, c_o = _positive_int("c_i", c_i), _positive_int("c_o", c_o)
    k_h, k_w, g = _positive_int("k_h", k_h), _positive_int("k_w", k_w), _positive_int("g", g)
    _check_groups(c_i, c_o, g)
    return c_o * (c_i // g) * k_h * k_w


def conv_macs(
    c_i: int, c_o: int, k_h: int, k_w: int, h_o: int, w_o: int, g: int = 1, n: int = 1
) -> int:
    """MACs of a (grouped) convolution = c_i/g · k_h · k_w · c_o · h_o · w_o   (batch size n = 1)

    Every one of the c_o · h_o · w_o outputs is a dot product over c_i/g · k_h · k_w inputs;
    a batch of n costs n times as much.
    """
    c_i, c_o = _positive_int("c_i", c_i), _positive_int("c_o", c_o)
    k_h, k_w, g = _positive_int("k_h", k_h), _positive_int("k_w", k_w), _positive_int("g", g)
    h_o, w_o, n = _positive_int("h_o", h_o), _positive_int("w_o", w_o), _positive_int("n", n)
    _check_groups(c_i, c_o, g)
    return n * (c_i // g) * k_h * k_w * c_o * h_o * w_o


def depthwise_conv_params(c: int, k_h: int, k_w: int) -> int:
    """#parameters of a depthwise convolution = c_o · k_h · k_w   (g = c_i = c_o = c)

    The grouped formula with g = c: `conv_params(c, c, k_h, k_w, g=c)`.
    """
    c = _positive_int("c", c)
    return conv_params(c, c, k_h, k_w, g=c)


def depthwise_conv_macs(c: int, k_h: int, k_w: int, h_o: int, w_o: int, n: int = 1) -> int:
    """MACs of a depthwise convolution = k_h · k_w · c_o · h_o · w_o   (g = c_i = c_o = c)

    The grouped formula with g = c: `conv_macs(c, c, k_h, k_w, h_o, w_o, g=c)`.
    """
    c = _positive_int("c", c)
    return conv_macs(c, c, k_h, k_w, h_o, w_o, g=c, n=n)


def pointwise_conv_params(c_i: int, c_o: int, g: int = 1) -> int:
    """#parameters of a 1x1 (pointwise) convolution = c_o · c_i / g   (k_h = k_w = 1)"""
    return conv_params(c_i, c_o, 1, 1, g=g)


def pointwise_conv_macs(c_i: int, c_o: int, h_o: int, w_o: int, g: int = 1, n: int = 1) -> int:
    """MACs of a 1x1 (pointwise) convolution = c_i · c_o · h_o · w_o   (k_h = k_w = 1; / g if grouped)"""
    return conv_macs(c_i, c_o, 1, 1, h_o, w_o, g=g, n=n)


def conv_output_size(
    h_i: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """h_o = ⌊(h_i + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1   (the same for w_o)"""
    h_i, k = _positive_int("h_i", h_i), _positive_int("k", k)
    stride, dilation = _positive_int("stride", stride), _positive_int("dilation", dilation)
    padding = _non_negative_int("padding", padding)
    h_o = (h_i + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    if h_o <= 0:
        raise ValueError(
            f"kernel k={k} (dilation {dilation}) does not fit input h_i={h_i} with padding={padding}"
        )
    return h_o


def flops(macs: int) -> int:
    """FLOPs = 2 · MACs   (one multiply and one add per multiply-accumulate)"""
    return 2 * _non_negative_int("macs", macs)


def ops(macs: int) -> int:
    """OPs = 2 · MACs   (the same count as FLOPs when the operands are integers, e.g. an int8
    network on a microcontroller or an NPU; hardware data sheets quote OPS = OPs per second)"""
    return 2 * _non_negative_int("macs", macs)


def per_second(count: int | float, seconds: float) -> float:
    """FLOPS (or OPS) = FLOPs (or OPs) / seconds   (a rate: what a device delivers, or what a
    model achieves on it; e.g. per_second(flops(macs), latency) is the achieved FLOPS)"""
    if isinstance(count, bool) or not isinstance(count, (int, float)) or not count >= 0:
        raise ValueError(f"count must be a non-negative number of operations, got {count!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (0 < seconds < math.inf):
        raise ValueError(f"seconds must be a positive, finite time, got {seconds!r}")
    return count / seconds


def model_size(params: int, bits: int = 32) -> float:
    """Model size in bytes = #parameters · bit width / 8   (fp32: 4 bytes, int8: 1 byte each)"""
    params, bits = _non_negative_int("params", params), _positive_int("bits", bits)
    return params * bits / 8


def num_activations(shape: Sequence[int]) -> int:
    """#activations of a feature map = product of its shape, e.g. n · c · h · w"""
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, (tuple, list)) or not shape:
        raise TypeError(f"shape must be a non-empty tuple of positive integers, got {shape!r}")
    return math.prod(_positive_int(f"shape[{i}]", s) for i, s in enumerate(shape))


# --------------------------------------------------------------------------------------------
# profile(model, x): measure a real model with one forward pass
# --------------------------------------------------------------------------------------------

aten = torch.ops.aten


def _mm_macs(a: torch.Tensor, b: torch.Tensor) -> int:
    # (…, m, k) @ (…, k, n): every one of the (…, m, n) outputs is a k-long dot product
    return a.numel() * b.shape[-1]


def _conv_macs_op(args, out) -> int:
    x, weight = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    if transposed:
        # weight (c_i, c_o/g, k_h, k_w): each input element is spread over c_o/g · k_h · k_w outputs
        return x.numel() * math.prod(weight.shape[1:])
    # weight (c_o, c_i/g, k_h, k_w): each output element sums c_i/g · k_h · k_w products
    return out.numel() * math.prod(weight.shape[1:])


def _sdpa_macs(args, out) -> int:
    q, k, v = args[0], args[1], args[2]
    batch = math.prod(q.shape[:-2])
    l, e, s, e_v = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    return batch * l * s * e + batch * l * s * e_v  # Q Kᵀ, then softmax(·) V


def _native_mha_macs(args, out) -> int:
    # PyTorch's fused fast path of nn.MultiheadAttention (eval mode, no grad): one aten op that
    # does the Q, K, V projections, the scaled dot-product attention and the output projection.
    query, key, embed_dim = args[0], args[1], int(args[3])  # args[2]: the values, shaped as the keys
    batch = math.prod(query.shape[:-2]) if query.dim() > 2 else 1
    l, s = query.shape[-2], key.shape[-2]
    projections = batch * (l + 2 * s) * embed_dim * embed_dim  # Q, K, V: L·d² + 2·S·d²
    attention = 2 * batch * l * s * embed_dim  # Q Kᵀ and softmax(·) V over all heads
    output = batch * l * embed_dim * embed_dim  # W^O
    return projections + attention + output


# The lecture's convention: multiply-accumulates of convolutions and matrix products only.
# Bias additions, normalization, activations, pooling and element-wise ops count as zero.
_MAC_RULES = {
    aten.convolution.default: _conv_macs_op,
    aten._convolution.default: _conv_macs_op,
    aten.mm.default: lambda args, out: _mm_macs(args[0], args[1]),
    aten.addmm.default: lambda args, out: _mm_macs(args[1], args[2]),
    aten.bmm.default: lambda args, out: _mm_macs(args[0], args[1]),
    aten.baddbmm.default: lambda args, out: _mm_macs(args[1], args[2]),
    aten._native_multi_head_attention.default: _native_mha_macs,
}
for _name in (
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_attention_math",
):
    if hasattr(aten, _name):
        _MAC_RULES[getattr(aten, _name).default] = _sdpa_macs

# Ops that a deployment runtime runs in place when their input dies there (MCUNet's in-place
# depthwise/element-wise reasoning): normalization in inference mode, and pointwise ops.
_IN_PLACE_CAPABLE = {
    getattr(aten, name).default
    for name in (
        "native_batch_norm",
        "_native_batch_norm_legit_no_training",
        "_native_batch_norm_legit",
        "native_layer_norm",
        "native_group_norm",
        "_softmax",
        "native_dropout",
    )
    if hasattr(aten, name)
}


def _is_in_place_capable(func) -> bool:
    return func in _IN_PLACE_CAPABLE or torch.Tag.pointwise in getattr(func, "tags", ())


@dataclass
class LayerProfile:
    """One row of a profile: one layer (module) of the model."""

    name: str  # qualified module name, e.g. "features.3.conv.0"
    type: str  # module class, e.g. "Conv2d"
    output_shape: tuple  # shape of the layer's output for the profiled input
    params: int  # parameter elements of this layer (weights, bias, BN affine: every element)
    macs: int  # multiply-accumulates done by this layer's own operations
    activations: int  # elements of this layer's output activation


@dataclass
class Profile:
    """What `profile` measured: per-layer rows and whole-model totals.

    Element counts are stored; bytes come from `model_size(bits)` and `peak_memory(bits)` so the
    same profile answers for fp32 (32 bits) and int8 (8 bits) deployment.
    """

    layers: list[LayerProfile]
    params: int  # every parameter element of the model (what papers report)
    macs: int  # multiply-accumulates (lecture convention), for the profiled batch
    activations: int  # total #activations: sum of the rows' output activations
    peak_activations: int  # peak #activation elements held at once (see `profile`)
    peak_layer: str  # the layer running when the peak is reached
    input_shape: tuple = ()
    _rows: dict = field(default_factory=dict, repr=False)

    @property
    def flops(self) -> int:
        """FLOPs = 2 · MACs"""
        return flops(self.macs)

    def model_size(self, bits: int = 32) -> float:
        """Bytes to store the weights at `bits` bits per parameter."""
        return model_size(self.params, bits)

    @property
    def model_size_bytes(self) -> float:
        """Model size in bytes with fp32 weights."""
        return self.model_size(32)

    def peak_memory(self, bits: int = 32) -> float:
        """Peak activation memory in bytes at `bits` bits per activation."""
        return model_size(self.peak_activations, bits)

    def __getitem__(self, name: str) -> LayerProfile:
        """The row of the layer called `name`."""
        try:
            return self._rows[name]
        except KeyError:
            raise KeyError(f"no layer named {name!r}; layers: {list(self._rows)}") from None

    def table(self) -> str:
        """The profile as a readable text table."""
        header = ("layer", "type", "output shape", "params", "MACs", "activations")
        rows = [
            (
                r.name or "(model)",
                r.type,
                "x".join(map(str, r.output_shape)),
                f"{r.params:,}",
                f"{r.macs:,}",
                f"{r.activations:,}",
            )
            for r in self.layers
        ]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
        align = ["<", "<", "<", ">", ">", ">"]

        def line(cells):
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths))

        out = [line(header), line(["-" * w for w in widths])]
        out += [line(r) for r in rows]
        out.append("")
        out.append(f"input {'x'.join(map(str, self.input_shape))}")
        out.append(f"#parameters        {self.params:>16,}   model size {_human_bytes(self.model_size(32))} (fp32), {_human_bytes(self.model_size(8))} (int8)")
        out.append(f"#MACs              {self.macs:>16,}   FLOPs {self.flops:,}")
        out.append(f"total #activations {self.activations:>16,}")
        out.append(
            f"peak #activations  {self.peak_activations:>16,}   {_human_bytes(self.peak_memory(32))} (fp32), "
            f"{_human_bytes(self.peak_memory(8))} (int8), at {self.peak_layer or '(model)'}"
        )
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1000
    return f"{n:,.1f} GB"


class _Recorder(TorchDispatchMode):
    """Sees every aten op of the forward pass; attributes MACs to the running module and
    records which activation storages each op reads and allocates."""

    def __init__(self, weight_ptrs: set[int]):
        super().__init__()
        self.weight_ptrs = weight_ptrs
        self.stack: list[str] = [""]  # names of the modules currently running
        self.self_macs: dict[str, int] = {}
        self.self_allocs: dict[str, int] = {}
        self.events: list[tuple[str, list[int], list[tuple[int, int]], bool]] = []
        self.sizes: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # keeps storages alive so pointers stay unique

    @staticmethod
    def _ptr(t: torch.Tensor) -> int:
        return t.untyped_storage().data_ptr()

    def add_input(self, t: torch.Tensor) -> None:
        p = self._ptr(t)
        self.sizes[p] = t.numel()
        self.keep.append(t)
        self.events.append(("", [], [(p, t.numel())], False))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        module = self.stack[-1]
        rule = _MAC_RULES.get(func)
        if rule is not None:
            first = out[0] if isinstance(out, (tuple, list)) else out
            self.self_macs[module] = self.self_macs.get(module, 0) + int(rule(args, first))

        reads = []
        for a in _tensors(args, kwargs):
            if a.numel() == 0:
                continue
            p = self._ptr(a)
            if p in self.sizes:
                reads.append(p)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        allocs = []
        for i, o in enumerate(outs):
            if not isinstance(o, torch.Tensor) or o.numel() == 0:
                continue
            p = self._ptr(o)
            if p in self.sizes or p in self.weight_ptrs:
                continue  # a view or an in-place result: no new memory
            if i > 0 and not isinstance(out, list):
                continue  # secondary outputs (pool indices, saved statistics) are bookkeeping
            if not o.is_floating_point() and not o.is_complex():
                continue
            self.sizes[p] = o.numel()
            self.keep.append(o)
            allocs.append((p, o.numel()))
            self.self_allocs[module] = self.self_allocs.get(module, 0) + o.numel()
        if reads or allocs:
            self.events.append((module, reads, allocs, _is_in_place_capable(func)))
        return out


def _tensors(*trees) -> Iterable[torch.Tensor]:
    for tree in trees:
        if isinstance(tree, torch.Tensor):
            yield tree
        elif isinstance(tree, (list, tuple)):
            yield from _tensors(*tree)
        elif isinstance(tree, dict):
            yield from _tensors(*tree.values())


def _peak(events, outputs: set[int]) -> tuple[int, str]:
    """Simulate layer-by-layer execution over the recorded ops; return (peak elements, where)."""
    last_use: dict[int, int] = {}
    for i, (_, reads, allocs, _) in enumerate(events):
        for p in reads:
            last_use[p] = i
        for p, _n in allocs:
            last_use.setdefault(p, i)
    live: dict[int, int] = {}
    peak, where = 0, ""
    for i, (module, reads, allocs, in_place) in enumerate(events):
        dying = [p for p in dict.fromkeys(reads) if last_use.get(p) == i and p not in outputs]
        for p, n in allocs:
            reuse = next((d for d in dying if in_place and live.get(d) == n), None)
            if reuse is not None:
                dying.remove(reuse)
                del live[reuse]  # the output takes over the dying input's buffer
            live[p] = n
        total = sum(live.values())
        if total > peak:
            peak, where = total, module
        for p in dying:
            live.pop(p, None)
        for p, _n in allocs:
            if last_use.get(p) == i and p not in outputs:
                live.pop(p, None)
    return peak, where


@torch.no_grad()
def profile(model: nn.Module, x: torch.Tensor | Sequence[int]) -> Profile:
    """Measure a model with one forward pass of `x` (a tensor, or a shape such as (1, 3, 224, 224)).

    Hooks on the real modules and an aten-level op recorder give, per layer (a module whose
    children did not run, plus any module that multiplies tensors itself, e.g. attention):
    output shape, parameters, MACs and output activations; and for the model:

    - ``params``: every parameter element (weights, biases, BN scale/shift): what papers report.
      The lecture's per-layer formulas ignore bias; for bias-free conv/linear layers they agree.
    - ``macs``: the lecture's convention. Convolutions (grouped, depthwise, transposed) and
      matrix products (linear layers, attention's Q·Kᵀ and softmax·V) count; bias, BN,
      activations, pooling and element-wise ops count zero. Attention is counted whichever code
      path PyTorch takes (unfused matmuls, fused scaled-dot-product kernels, or
      nn.MultiheadAttention's fused inference path): 4·L·d² + 2·L²·d for self-attention over
      L tokens of width d. Third-party counters differ on exactly these points (some add bias
      and BN, some count a fused attention kernel as 0); this one follows the lecture.
      MACs scale with the batch: pass a batch of one for the lecture's per-sample numbers.
    - ``flops`` = 2 · macs; ``model_size(bits)`` = params · bits / 8 bytes.
    - ``activations``: total #activations, the sum of the layers' output elements.
    - ``peak_activations``: peak #activations, what must be held at once when the layers run one
      after another (MCUNet's peak memory): a tensor is alive from the operation that produces it
      until its last consumer, so a skip connection's input stays alive across its whole block.
      The input counts; weights do not; views (reshape, flatten, transpose) take no memory;
      element-wise operations and inference-mode normalization write in place when their input
      dies there, as deployment runtimes do (so Conv-BN-ReLU holds input + output, and an
      inverted bottleneck peaks at its depthwise conv: block input + 2 x expanded map).
      ``peak_memory(bits)`` turns it into bytes.

    The model runs in eval mode under `torch.no_grad()` and its train/eval mode is restored.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        if not isinstance(x, (tuple, list, torch.Size)) or not x:
            raise TypeError(f"x must be an input tensor or a shape tuple, got {x!r}")
        shape = tuple(_positive_int(f"x[{i}]", s) for i, s in enumerate(x))
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else "cpu"
        x = torch.randn(shape, device=device, generator=None)

    weights = [*model.parameters(), *model.buffers()]
    weight_ptrs = {w.untyped_storage().data_ptr() for w in weights if w.numel() > 0}
    names = {m: n for n, m in model.named_modules()}
    rec = _Recorder(weight_ptrs)
    calls: dict[str, dict] = {}  # per module name: type, output shape, activations, children ran

    def pre_hook(module, inputs):
        name = names.get(module, "?")
        parent = rec.stack[-1]
        if parent in calls:
            calls[parent]["children_ran"] = True
        entry = calls.setdefault(
            name, {"type": type(module).__name__, "shape": (), "act": 0, "children_ran": False,
                   "params": sum(p.numel() for p in module.parameters(recurse=False)), "module": module}
        )
        entry.setdefault("order", len(calls))
        rec.stack.append(name)

    def post_hook(module, inputs, output):
        name = rec.stack.pop()
        first = next(iter(_tensors(output)), None)
        if first is not None:
            calls[name]["shape"] = tuple(first.shape)
            calls[name]["act"] += first.numel()

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(post_hook))
    was_training = model.training
    model.eval()
    try:
        with rec:
            rec.add_input(x)
            output = model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    layers = []
    for name, c in sorted(calls.items(), key=lambda kv: kv[1]["order"]):
        own_macs = rec.self_macs.get(name, 0)
        leaf = not c["children_ran"]
        if not leaf and own_macs == 0:
            continue
        params = sum(p.numel() for p in c["module"].parameters()) if leaf else c["params"]
        act = c["act"] if leaf else rec.self_allocs.get(name, 0)
        layers.append(LayerProfile(name, c["type"], c["shape"], params, own_macs, act))
    out_ptrs = {t.untyped_storage().data_ptr() for t in _tensors(output) if t.numel()}
    peak, where = _peak(rec.events, out_ptrs)
    rows = {layer.name: layer for layer in layers}
    return Profile(
        layers=layers,
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(rec.self_macs.values()),
        activations=sum(layer.activations for layer in layers),
        peak_activations=peak,
        peak_layer=where,
        input_shape=tuple(x.shape),
        _rows=rows,
    )
