"""edgeai.estimation.latency: measurements against operations of known duration (a module that
sleeps), the lookup table's JSON round trip and sum, the table checked against a network built
from its operations, and clear errors. Repeats are small: these tests check behaviour, the
benchmark script (benchmarks/estimation.py) reports the numbers."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from edgeai.estimation.latency import (
    Latency,
    TableCheck,
    build_latency_table,
    check_latency_table,
    layer_keys,
    load_latency_table,
    measure_latency,
    op_key,
    save_latency_table,
    table_latency,
)


class Sleep(nn.Module):
    """An operation of known latency: it sleeps `ms` milliseconds and returns its input."""

    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        time.sleep(self.ms / 1000)
        return x


def test_measure_latency_of_a_tiny_model():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    model.train()
    result = measure_latency(model, torch.randn(2, 8), warmup=2, repeats=9, threads=1)
    assert isinstance(result, Latency) and result.repeats == 9 and result.device == "cpu"
    assert 0 < result.min_ms <= result.median_ms < 50
    assert result.iqr_ms >= 0 and result.std_ms >= 0
    assert result.median_ms == sorted(result.samples_ms)[4]
    assert model.training  # mode restored
    assert "ms" in str(result)
    by_shape = measure_latency(model, (2, 8), warmup=1, repeats=3, number=2)
    assert by_shape.repeats == 3 and by_shape.median_ms > 0


def test_measure_latency_against_a_known_duration():
    result = measure_latency(Sleep(3.0), (1, 1), warmup=1, repeats=5)
    assert 3.0 <= result.min_ms < 30  # sleep never returns early; a busy machine may wake it late


def test_op_key_and_layer_keys_follow_the_shapes():
    assert op_key("sep_conv_3x3", (1, 16, 32, 32)) == "sep_conv_3x3@1x16x32x32"
    layers = [
        ("conv3x3_1_8_s2", nn.Conv2d(1, 8, 3, stride=2, padding=1)),  # 16x16 -> 8x8
        ("relu", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc_8_10", nn.Linear(8, 10)),
    ]
    assert layer_keys(layers, (2, 1, 16, 16)) == [
        "conv3x3_1_8_s2@2x1x16x16", "relu@2x8x8x8", "pool@2x8x8x8", "flatten@2x8x1x1", "fc_8_10@2x8",
    ]
    with pytest.raises(ValueError, match="'@'"):
        op_key("a@b", (1,))
    with pytest.raises(ValueError, match="input_shape"):
        op_key("conv", (1, 0, 3))


def test_table_round_trips_json_and_sums_its_entries(tmp_path):
    candidates = [("fc_8_8", nn.Linear(8, 8), (1, 8)), ("relu", nn.ReLU(), (1, 8)), ("fc_8_8", nn.Linear(8, 8), (4, 8))]
    table = build_latency_table(candidates, warmup=1, repeats=3, progress=False, threads=1)
    assert list(table) == ["fc_8_8@1x8", "relu@1x8", "fc_8_8@4x8"] and all(v > 0 for v in table.values())
    path = save_latency_table(table, tmp_path / "tables" / "cpu.json", threads=1)
    assert load_latency_table(path) == table
    document = json.loads(path.read_text())
    assert document["unit"] == "ms" and document["device"].startswith("cpu: ") and "1 threads" in document["device"]
    keys = ["fc_8_8@1x8", "relu@1x8", "fc_8_8@1x8", "fc_8_8@4x8"]
    assert table_latency(table, keys) == pytest.approx(2 * table["fc_8_8@1x8"] + table["relu@1x8"] + table["fc_8_8@4x8"])
    assert table_latency({"a@1": 0.25, "b@1": 1.5}, ["a@1", "b@1", "a@1"]) == 2.0  # by hand
    assert table_latency(table, []) == 0.0


def test_table_check_against_a_network_of_known_latency():
    layers = [("sleep2", Sleep(2.0)), ("sleep3", Sleep(3.0)), ("sleep2", Sleep(2.0))]
    shape = (1, 4)
    table = build_latency_table([("sleep2", Sleep(2.0), shape), ("sleep3", Sleep(3.0), shape)],
                                warmup=1, repeats=5, progress=False)
    assert 2.0 <= table["sleep2@1x4"] < 20 and 3.0 <= table["sleep3@1x4"] < 30
    check = check_latency_table(table, layers, shape, warmup=1, repeats=5)
    assert isinstance(check, TableCheck)
    assert check.keys == ("sleep2@1x4", "sleep3@1x4", "sleep2@1x4")
    assert check.table_ms == pytest.approx(2 * table["sleep2@1x4"] + table["sleep3@1x4"])
    assert check.measured.median_ms >= 7.0
    assert check.relative_error == pytest.approx((check.table_ms - check.measured.median_ms) / check.measured.median_ms)
    assert abs(check.relative_error) < 0.5  # 7 ms of sleep either way; only wake-up jitter differs
    assert "%" in str(check)


def test_table_check_on_a_real_network():
    # A digits-sized CNN at 32x32, batch 1, one thread: the ops take 3-110 µs each, the network
    # about 0.17 ms. The table's sum leaves out what happens between ops (the nn.Sequential's own
    # calls, caches cooled by the other ops), so it comes out low: benchmarks/estimation.py
    # measured -8.4% at 32x32 and -25% at 8x8. The median of five checks of 31 repeats each, over
    # 30 tries each: -3.6% to -29% on the 2-core machine loaded by others, -31% to +0.5% beside a process
    # running convolutions (and one check of three reached -44% in the full parallel suite).
    # The bound fails a table that doubles every entry (+31% to +87% beside that process), or
    # misses the 16->16 convolution (-69% to -84%); it would flake only if another process
    # disturbed the table and the network differently in three of five checks.
    layers = [("conv3x3_1_16", nn.Conv2d(1, 16, 3, padding=1)), ("relu", nn.ReLU()),
              ("conv3x3_16_16", nn.Conv2d(16, 16, 3, padding=1)), ("gap", nn.AdaptiveAvgPool2d(1)),
              ("flatten", nn.Flatten()), ("fc_16_10", nn.Linear(16, 10))]
    x = torch.randn(1, 1, 32, 32)
    keys = layer_keys(layers, x)
    assert keys == ["conv3x3_1_16@1x1x32x32", "relu@1x16x32x32", "conv3x3_16_16@1x16x32x32",
                    "gap@1x16x32x32", "flatten@1x16x1x1", "fc_16_10@1x16"]
    candidates = [(k.split("@")[0], m, tuple(map(int, k.split("@")[1].split("x")))) for k, (_, m) in zip(keys, layers)]
    errors = []
    for _ in range(5):
        table = build_latency_table(candidates, warmup=3, repeats=31, progress=False, threads=1)
        check = check_latency_table(table, layers, x, warmup=3, repeats=31, threads=1)
        assert check.keys == tuple(keys) and check.measured.repeats == 31
        assert check.table_ms == sum(table[k] for k in keys)  # every op once, nothing else
        assert check.relative_error == (check.table_ms - check.measured.median_ms) / check.measured.median_ms
        errors.append(check.relative_error)
    assert -0.6 < sorted(errors)[2] < 0.25, errors


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: measure_latency(nn.ReLU(), (1, 4), repeats=0), ValueError, "repeats"),
        (lambda: measure_latency(nn.ReLU(), (1, 4), warmup=-1), ValueError, "warmup"),
        (lambda: measure_latency(nn.ReLU(), (1, 4), number=1.5), TypeError, "number"),
        (lambda: measure_latency(nn.ReLU(), (1, 4), threads=0), ValueError, "threads"),
        (lambda: measure_latency(lambda x: x, (1, 4)), TypeError, "nn.Module"),
        (lambda: measure_latency(nn.ReLU(), "1x4"), ValueError, "sequence of positive integers"),
        (lambda: measure_latency(nn.ReLU(), (1, 4), device="tpu"), ValueError, "device"),
        (lambda: build_latency_table([]), ValueError, "empty"),
        (lambda: build_latency_table([("relu", nn.ReLU())]), TypeError, r"candidates\[0\]"),
        (lambda: build_latency_table([("relu", nn.ReLU(), (1, 4))] * 2), ValueError, "repeat the op keys"),
        (lambda: table_latency({"a@1": 1.0}, ["a@1", "b@2"]), KeyError, "b@2"),
        (lambda: table_latency({"a@1": 1.0}, "a@1"), TypeError, "list of op keys"),
        (lambda: table_latency({"a@1": -1.0}, ["a@1"]), ValueError, "non-negative"),
        (lambda: table_latency([("a@1", 1.0)], ["a@1"]), TypeError, "dict"),
        (lambda: layer_keys([], (1, 4)), ValueError, "empty"),
        (lambda: check_latency_table({}, [("relu", nn.ReLU())], (1, 4)), KeyError, "relu@1x4"),
    ],
)
def test_bad_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_load_rejects_files_that_are_not_tables(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON latency table"):
        load_latency_table(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"entries": {"a@1": 1.0}}))
    with pytest.raises(ValueError, match="unit 'ms'"):
        load_latency_table(tmp_path / "other.json")
    (tmp_path / "negative.json").write_text(json.dumps({"unit": "ms", "entries": {"a@1": -2}}))
    with pytest.raises(ValueError, match="non-negative"):
        load_latency_table(tmp_path / "negative.json")
    (tmp_path / "text.json").write_text(json.dumps({"unit": "ms", "entries": {"a@1": "fast"}}))
    with pytest.raises(ValueError, match="'a@1'"):
        load_latency_table(tmp_path / "text.json")
    (tmp_path / "list.json").write_text(json.dumps({"unit": "ms", "entries": [1.0]}))
    with pytest.raises(TypeError, match="dict"):
        load_latency_table(tmp_path / "list.json")
