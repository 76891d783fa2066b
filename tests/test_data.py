"""edgeai.data: digits splits against scikit-learn's raw data, CIFAR-10 read back from files
written in the real format (Python 2 pickles with bytes keys, uint8 rows of 3072), the checksum
check of the download with a fake archive (no network), synthetic data and seeded mini-batches."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from edgeai import data as D
from edgeai.data import Dataset, Split, batches, cifar10, digits, download_cifar10, synthetic

RAW = load_digits()


# ------------------------------------------------------------------------------------ digits


@pytest.fixture(scope="module")
def digits8() -> Dataset:
    return digits(resolution=8, seed=0)


def test_digits_shapes_sizes_and_metadata(digits8):
    d = digits8
    assert (len(d.train), len(d.val), len(d.test)) == (1078, 359, 360)  # 1797 = 60 / 20 / 20 %
    for split in (d.train, d.val, d.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (1, 8, 8) and split.x.is_contiguous()
    assert d.num_classes == 10 and d.classes == tuple("0123456789") and d.input_shape == (1, 8, 8)
    assert d.name == "digits-8" and d.device == torch.device("cpu")
    assert "train 1078" in repr(d)


def test_digits_splits_partition_the_raw_images_and_are_stratified():
    d = digits(8, seed=3, normalize=False)
    # oracle: scikit-learn's raw pixels (0..16); every image lands in exactly one split
    rows = torch.cat([d.train.x, d.val.x, d.test.x]).reshape(-1, 64) * 16
    labels = torch.cat([d.train.y, d.val.y, d.test.y])
    ours = sorted(zip(map(tuple, rows.round().int().tolist()), labels.tolist()))
    theirs = sorted(zip(map(tuple, RAW.data.astype(int).tolist()), RAW.target.tolist()))
    assert ours == theirs
    total = Counter(RAW.target.tolist())
    for split, fraction in ((d.train, 0.6), (d.val, 0.2), (d.test, 0.2)):
        counts = Counter(split.y.tolist())
        for c in range(10):  # stratified: each class in proportion, up to rounding
            assert abs(counts[c] - fraction * total[c]) <= 1.5, (c, counts[c], fraction * total[c])


def test_digits_is_seeded(digits8):
    again = digits(8, seed=0)
    other = digits(8, seed=1)
    assert torch.equal(digits8.train.x, again.train.x) and torch.equal(digits8.test.y, again.test.y)
    assert not torch.equal(digits8.test.x, other.test.x)


def test_digits_normalised_with_training_statistics_only(digits8):
    x = digits8.train.x
    assert abs(x.mean().item()) < 1e-5 and abs(x.std().item() - 1) < 1e-4
    raw = digits(8, seed=0, normalize=False)
    mean, std = raw.train.x.mean().item(), raw.train.x.std().item()
    assert digits8.mean == pytest.approx((mean,)) and digits8.std == pytest.approx((std,))
    # val/test are transformed with the training statistics, not their own
    assert torch.allclose(digits8.val.x, (raw.val.x - mean) / std, atol=1e-5)
    assert raw.train.x.min() >= 0 and raw.train.x.max() <= 1


@pytest.mark.parametrize("resolution", [16, 32])
def test_digits_upsampled_bilinearly(resolution):
    small, big = digits(8, seed=0, normalize=False), digits(resolution, seed=0, normalize=False)
    assert big.input_shape == (1, resolution, resolution) and big.name == f"digits-{resolution}"
    assert big.train.x.shape == (1078, 1, resolution, resolution)
    expected = F.interpolate(small.test.x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    assert torch.allclose(big.test.x, expected)
    assert torch.equal(big.test.y, small.test.y)  # the same split at every resolution
    normalised = digits(resolution, seed=0)
    assert abs(normalised.train.x.mean().item()) < 1e-5


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(resolution=4), ValueError, "at least 8"),
        (dict(resolution=16.0), TypeError, "resolution"),
        (dict(seed="0"), TypeError, "seed"),
        (dict(val_size=0.0), ValueError, "val_size"),
        (dict(test_size=1.5), ValueError, "test_size"),
        (dict(val_size=0.5, test_size=0.45), ValueError, "training data"),
    ],
)
def test_digits_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        digits(**kwargs)


def test_split_subset_is_stratified_and_seeded(digits8):
    sub = digits8.train.subset(100, seed=5)
    assert len(sub) == 100
    counts = Counter(sub.y.tolist())
    full = Counter(digits8.train.y.tolist())
    for c in range(10):
        assert abs(counts[c] - 100 * full[c] / len(digits8.train)) < 1
    assert torch.equal(sub.x, digits8.train.subset(100, seed=5).x)
    assert not torch.equal(sub.x, digits8.train.subset(100, seed=6).x)
    # every sample of the subset is a sample of the split
    rows = {tuple(r) for r in digits8.train.x.reshape(len(digits8.train), -1).tolist()}
    assert all(tuple(r) in rows for r in sub.x.reshape(100, -1).tolist())
    smaller = digits8.with_train_subset(50, seed=0)
    assert len(smaller.train) == 50 and smaller.val is digits8.val
    with pytest.raises(ValueError, match="larger than the split"):
        digits8.train.subset(5000, seed=0)


def test_split_checks_and_conversions():
    with pytest.raises(ValueError, match="2 samples but Split.y has 3 labels"):
        Split(torch.zeros(2, 1, 2, 2), torch.zeros(3, dtype=torch.int64))
    split = Split(torch.arange(8.0).reshape(2, 1, 2, 2), torch.tensor([0, 1]))
    assert len(split.tensor_dataset()) == 2 and torch.equal(split.tensor_dataset()[1][0], split.x[1])
    assert split.to("cpu").x.device.type == "cpu"


# ------------------------------------------------------------------------------------ CIFAR-10

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(folder: Path, per_batch: int = 20, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Small files in the real format: Python 2 style pickles (protocol 2) of dicts with bytes
    keys, b'data' a uint8 array (N, 3072) of R, G, B planes, b'labels' a list of ints."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in np.arange(per_batch) % 10]
        if name == "data_batch_1":  # one known image: red plane 255, green 0, blue 128
            data[0] = np.concatenate([np.full(1024, 255), np.zeros(1024), np.full(1024, 128)]).astype(np.uint8)
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = (data, labels)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [n.encode() for n in NAMES], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return written


def test_cifar10_reads_the_real_file_format(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    d = cifar10(tmp_path, seed=0, val_size=10, normalize=False)
    assert (len(d.train), len(d.val), len(d.test)) == (90, 10, 20)
    assert d.input_shape == (3, 32, 32) and d.train.x.shape == (90, 3, 32, 32) and d.num_classes == 10
    assert d.classes == tuple(NAMES) and d.name == "cifar10"
    # every training image comes back, as uint8 / 255 in (C, H, W) order, with its label
    expect = sorted((tuple(r), l) for n in [f"data_batch_{i}" for i in range(1, 6)] for r, l in zip(written[n][0].tolist(), written[n][1]))
    got_x = torch.cat([d.train.x, d.val.x]).reshape(100, 3072).mul(255).round().int().tolist()
    got_y = torch.cat([d.train.y, d.val.y]).tolist()
    assert sorted(zip(map(tuple, got_x), got_y)) == expect
    test_rows = d.test.x.reshape(20, 3072).mul(255).round().to(torch.uint8).numpy()
    assert np.array_equal(test_rows, written["test_batch"][0])  # the test split keeps the file's order
    assert d.test.y.tolist() == written["test_batch"][1]
    # the row layout: 1024 red, then green, then blue values, each a 32x32 image row by row
    known = [x for x in torch.cat([d.train.x, d.val.x]) if torch.all(x[0] == 1.0) and torch.all(x[1] == 0.0)]
    assert len(known) == 1 and torch.allclose(known[0][2], torch.full((32, 32), 128 / 255))
    # stratified validation split
    assert Counter(d.val.y.tolist()) == {c: 1 for c in range(10)}


def test_cifar10_normalised_per_channel_and_folder_given_directly(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    d = cifar10(tmp_path / "cifar-10-batches-py", seed=1, val_size=10)
    assert len(d.mean) == 3 and len(d.std) == 3
    means = d.train.x.mean(dim=(0, 2, 3))
    stds = d.train.x.std(dim=(0, 2, 3))
    assert torch.allclose(means, torch.zeros(3), atol=1e-5) and torch.allclose(stds, torch.ones(3), atol=1e-4)
    assert not torch.equal(d.val.x, cifar10(tmp_path, seed=2, val_size=10).val.x)
    assert torch.equal(d.val.x, cifar10(tmp_path, seed=1, val_size=10).val.x)


def test_cifar10_missing_folder_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "_fetch", lambda url, dest: pytest.fail("must not download unless asked"))
    with pytest.raises(FileNotFoundError) as info:
        cifar10(tmp_path / "nowhere")
    message = str(info.value)
    assert "--download" in message and "download=True" in message and "cifar-10-batches-py" in message


def test_cifar10_rejects_files_in_the_wrong_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), dtype=np.uint8), b"labels": [0, 1, 2, 3]}, f, protocol=2)
    with pytest.raises(ValueError, match="3072"):
        cifar10(tmp_path, val_size=10)


def fake_archive(tmp_path: Path) -> bytes:
    source = tmp_path / "source"
    write_cifar(source / "cifar-10-batches-py", per_batch=10)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


def test_download_verifies_the_checksum_then_extracts(tmp_path, monkeypatch):
    archive = fake_archive(tmp_path)
    fetched = []

    def fetch(url, destination):  # stands in for the network
        fetched.append(url)
        Path(destination).write_bytes(archive)

    monkeypatch.setattr(D, "_fetch", fetch)
    # the fake archive is not the official one: its checksum fails, nothing is kept
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        cifar10(tmp_path / "data", download=True)
    assert fetched == [D.CIFAR10_URL]
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()
    assert list((tmp_path / "data").iterdir()) == []
    # with its own checksum it is accepted, extracted and read
    monkeypatch.setattr(D, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    d = cifar10(tmp_path / "data", download=True, val_size=10)
    assert len(d.train) == 40 and len(d.test) == 10 and d.classes == tuple(NAMES)
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").is_file()
    # a second call finds the folder and fetches nothing
    download_cifar10(tmp_path / "data")
    assert len(fetched) == 2


def test_download_refuses_archive_members_outside_the_folder(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/../../evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    archive = buffer.getvalue()
    monkeypatch.setattr(D, "_fetch", lambda url, dest: Path(dest).write_bytes(archive))
    with pytest.raises(RuntimeError, match="unexpected member"):
        download_cifar10(tmp_path / "data", md5=hashlib.md5(archive).hexdigest())
    assert not (tmp_path / "evil").exists()


# ------------------------------------------------------------------------------------ synthetic


def test_synthetic_shapes_seed_and_prototypes():
    d = synthetic(50, (3, 8, 8), num_classes=4, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (50, 10, 10)
    assert d.train.x.shape == (50, 3, 8, 8) and d.input_shape == (3, 8, 8) and d.num_classes == 4
    assert set(d.train.y.tolist()) <= {0, 1, 2, 3}
    assert torch.equal(d.train.x, synthetic(50, (3, 8, 8), 4, seed=0).train.x)
    assert not torch.equal(d.train.x, synthetic(50, (3, 8, 8), 4, seed=1).train.x)
    clean = synthetic(40, (1, 4, 4), num_classes=3, seed=0, noise=0.0, n_val=5, n_test=6)
    assert (len(clean.val), len(clean.test)) == (5, 6)
    for c in range(3):  # without noise every sample of a class is its prototype
        members = clean.train.x[clean.train.y == c]
        assert len(members) > 0 and torch.equal(members, members[:1].expand_as(members))
    with pytest.raises(ValueError, match="shape"):
        synthetic(10, (8, 8))
    with pytest.raises(ValueError, match="noise"):
        synthetic(10, noise=-1.0)
    with pytest.raises(TypeError, match="n must"):
        synthetic(10.0)


# ------------------------------------------------------------------------------------ batches


def test_batches_in_order_shuffled_seeded_and_drop_last():
    split = Split(torch.arange(10.0).reshape(10, 1, 1, 1), torch.arange(10))
    ordered = list(batches(split, 4))
    assert [len(y) for _, y in ordered] == [4, 4, 2]
    assert torch.cat([y for _, y in ordered]).tolist() == list(range(10))
    assert [len(y) for _, y in batches(split, 4, drop_last=True)] == [4, 4]
    shuffled = torch.cat([y for _, y in batches(split, 3, rng=7)])
    assert sorted(shuffled.tolist()) == list(range(10)) and shuffled.tolist() != list(range(10))
    assert torch.equal(shuffled, torch.cat([y for _, y in batches(split, 3, rng=7)]))
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(7))  # the documented order
    assert torch.equal(shuffled, expected)
    for x, y in batches(split, 3, rng=7):  # images stay with their labels
        assert torch.equal(x.flatten(), y.float())
    g = torch.Generator().manual_seed(0)
    epoch1 = torch.cat([y for _, y in batches(split, 5, rng=g)])
    epoch2 = torch.cat([y for _, y in batches(split, 5, rng=g)])
    assert not torch.equal(epoch1, epoch2)  # a generator carries on: a new order each epoch
    with pytest.raises(ValueError, match="batch_size"):
        list(batches(split, 0))
    with pytest.raises(TypeError, match="rng"):
        list(batches(split, 2, rng="seed"))


def test_dataset_to_moves_every_split(digits8):
    moved = digits8.to("cpu")
    assert moved.train.x.device.type == moved.val.x.device.type == moved.test.x.device.type == "cpu"
    assert moved.input_shape == digits8.input_shape


def test_data_imports_nothing_of_the_project():
    source = Path(D.__file__).read_text()
    assert "from edgeai" not in source and "import edgeai" not in source
