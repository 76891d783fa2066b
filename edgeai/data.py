"""Data for the course: handwritten digits (the embedded default), CIFAR-10 from its files, synthetic.

Every dataset comes back as one small typed `Dataset`: three `Split`s (train / val / test), each
a pair of tensors that fit in memory,

    x   (N, C, H, W) float32, normalised with the training split's per-channel mean and std
    y   (N,)          int64 class indices

so a training loop can move a whole dataset to the device once (`data.to("cuda")`) and draw
seeded mini-batches from it with `batches(...)`, without a DataLoader and without a host
round trip per step.

- `digits(resolution, seed)`: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes;
  the file ships inside the scikit-learn wheel, so nothing is downloaded). Stratified, seeded
  train / validation / test splits. `resolution=16` or `32` upsamples the images bilinearly, so
  that input resolution is a real search dimension (the lecture's "resolution dimension").
- `cifar10(data_dir, download=False)`: CIFAR-10 (Krizhevsky 2009) from its standard python
  files `cifar-10-batches-py/` (`data_batch_1..5`, `test_batch`, `batches.meta`). It is
  downloaded, checksum-verified and extracted only when the caller asks (`download=True`).
- `synthetic(n, shape, num_classes, seed)`: Gaussian class prototypes plus noise, any shape;
  for throughput tests and for a learnable toy problem with no files at all.

This module imports nothing of the project (DESIGN.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

__all__ = [
    "Split",
    "Dataset",
    "digits",
    "cifar10",
    "download_cifar10",
    "synthetic",
    "batches",
    "DIGITS_RESOLUTIONS",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "CIFAR10_FOLDER",
]

DIGITS_RESOLUTIONS = (8, 16, 32)  # the resolutions the course searches over (8 = the native size)

# The official archive and its checksum, as published on https://www.cs.toronto.edu/~kriz/cifar.html
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"


# --------------------------------------------------------------------------------------------
# The containers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One split of a dataset: images and labels as two tensors on the same device."""

    x: torch.Tensor  # (N, C, H, W) float32, normalised
    y: torch.Tensor  # (N,) int64 class indices

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or not isinstance(self.y, torch.Tensor):
            raise TypeError("Split.x and Split.y must be torch tensors")
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"Split.x has {self.x.shape[0]} samples but Split.y has {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: str | torch.device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def tensor_dataset(self) -> TensorDataset:
        """The split as a `TensorDataset`, for code that wants a DataLoader after all."""
        return TensorDataset(self.x, self.y)

    def subset(self, n: int, seed: int) -> "Split":
        """`n` samples drawn without replacement, stratified by class where every class can
        keep a sample (so a small proxy training set still sees every digit), seeded."""
        n = _positive_int("n", n)
        if n > len(self):
            raise ValueError(f"n={n} is larger than the split ({len(self)} samples)")
        if n == len(self):
            return self
        index = _stratified_take(self.y.cpu().numpy(), n, seed)
        index_t = torch.as_tensor(index, device=self.y.device)
        return Split(self.x[index_t], self.y[index_t])


@dataclass(frozen=True)
class Dataset:
    """A whole (small) dataset: three splits plus what a model needs to know about its input."""

    name: str  # "digits-8", "digits-16", "cifar10", "synthetic", ...
    train: Split  # for the weights
    val: Split  # for the search: architectures are compared on this split
    test: Split  # reported once, for the final model; never used to choose
    num_classes: int
    classes: tuple[str, ...]  # a readable name per class index
    input_shape: tuple[int, int, int]  # (C, H, W) of one image
    mean: tuple[float, ...]  # per-channel mean subtracted (computed on the training split)
    std: tuple[float, ...]  # per-channel std divided by (computed on the training split)

    def to(self, device: str | torch.device) -> "Dataset":
        """The same dataset with every split moved to `device` (once, before training)."""
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    def resized(self, resolution: int) -> "Dataset":
        """The same images at `resolution` x `resolution` pixels (bilinear, on their device): the
        resolution dimension of a search on a dataset stored at one size (e.g. CIFAR-10 at 24 or 28)."""
        resolution = _positive_int("resolution", resolution)
        if self.input_shape[-1] == resolution and self.input_shape[-2] == resolution:
            return self
        return dataclasses.replace(
            self,
            name=f"{self.name}@{resolution}",
            train=Split(_resize(self.train.x, resolution), self.train.y),
            val=Split(_resize(self.val.x, resolution), self.val.y),
            test=Split(_resize(self.test.x, resolution), self.test.y),
            input_shape=(self.input_shape[0], resolution, resolution),
        )

    def with_train_subset(self, n: int, seed: int) -> "Dataset":
        """The same dataset with only `n` (stratified, seeded) training samples: a cheap proxy."""
        return dataclasses.replace(self, train=self.train.subset(n, seed))

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return (
            f"Dataset({self.name!r}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}; "
            f"{c}x{h}x{w}, {self.num_classes} classes, on {self.device})"
        )


# --------------------------------------------------------------------------------------------
# Argument checks and small helpers
# --------------------------------------------------------------------------------------------


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _seed(value: Any, name: str = "seed") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _stratified_take(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of `n` samples: every class proportionally (largest remainders), shuffled, seeded."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / counts.sum()
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")  # largest remainders get the leftovers
    take[order[: n - take.sum()]] += 1
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return rng.permutation(np.concatenate(chosen))


def _three_way_split(labels: np.ndarray, val_size: float | int, test_size: float | int, seed: int):
    """Stratified, seeded train / val / test indices (scikit-learn's `train_test_split` twice)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    if isinstance(val_size, float):  # a fraction of the whole, not of what is left
        val_size = round(val_size * len(labels))
    train, val = train_test_split(rest, test_size=val_size, stratify=labels[rest], random_state=seed)
    return train, val, test


def _normalise(train: torch.Tensor, *others: torch.Tensor):
    """Per-channel standardisation with the training split's statistics (no peeking at val/test).
    In place: the tensors are fresh copies (CIFAR-10's training split is 0.5 GB as float32)."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    out = [t.sub_(mean).div_(std) for t in (train, *others)]
    return out, tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# Handwritten digits: the embedded default
# --------------------------------------------------------------------------------------------


def digits(
    resolution: int = 8,
    seed: int = 0,
    val_size: float = 0.2,
    test_size: float = 0.2,
    normalize: bool = True,
) -> Dataset:
    """scikit-learn's handwritten digits (UCI optical recognition of handwritten digits: 1,797
    8x8 grey images with pixel values 0..16, 10 classes), as tensors (N, 1, r, r).

    resolution  8 (native), or larger (16, 32): bilinear upsampling, so resolution is a search
                dimension; anything below 8 would throw information away and is refused
    seed        seeds the stratified split; the default 0 is the course's canonical split, so
                numbers compare across notebooks
    val_size    fraction of all images held out for validation (architecture selection)
    test_size   fraction of all images held out for the final test
    normalize   standardise with the training split's mean and std (else pixels / 16 in [0, 1])

    The file ships in the scikit-learn wheel; nothing is downloaded.
    """
    resolution = _positive_int("resolution", resolution)
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8 (the images are 8x8), got {resolution}; "
                         f"the course uses {DIGITS_RESOLUTIONS}")
    seed = _seed(seed)
    val_size, test_size = _fraction("val_size", val_size), _fraction("test_size", test_size)
    if val_size + test_size >= 0.9:
        raise ValueError(f"val_size + test_size must leave training data, got {val_size} + {test_size}")

    from sklearn.datasets import load_digits

    raw = load_digits()
    x_all = torch.as_tensor(raw.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0  # (1797, 1, 8, 8)
    y_all = torch.as_tensor(raw.target, dtype=torch.int64)  # (1797,)
    train, val, test = _three_way_split(raw.target, val_size, test_size, seed)
    xs = [_resize(x_all[torch.as_tensor(i)], resolution) for i in (train, val, test)]
    ys = [y_all[torch.as_tensor(i)] for i in (train, val, test)]
    if normalize:
        xs, mean, std = _normalise(*xs)
    else:
        mean, std = (0.0,), (1.0,)
    return Dataset(
        name=f"digits-{resolution}",
        train=Split(xs[0].contiguous(), ys[0]),
        val=Split(xs[1].contiguous(), ys[1]),
        test=Split(xs[2].contiguous(), ys[2]),
        num_classes=10,
        classes=tuple(str(d) for d in range(10)),
        input_shape=(1, resolution, resolution),
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------------------------
# CIFAR-10 from its standard python files
# --------------------------------------------------------------------------------------------


def _fetch(url: str, destination: Path) -> None:
    """Download `url` to `destination` with a progress bar (tests replace this function)."""
    from tqdm.auto import tqdm

    with tqdm(unit="B", unit_scale=True, desc=f"downloading {url.rsplit('/', 1)[-1]}") as bar:

        def hook(blocks: int, block_size: int, total: int) -> None:
            if total > 0:
                bar.total = total
            bar.update(blocks * block_size - bar.n)

        urllib.request.urlretrieve(url, destination, reporthook=hook)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_cifar10(data_dir: str | os.PathLike, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch the official CIFAR-10 python archive (`url`, default CIFAR10_URL) into `data_dir`,
    verify its MD5 checksum (default CIFAR10_MD5) and extract it; return the
    `cifar-10-batches-py` folder. A folder already there is kept as is. An archive with the
    wrong checksum is deleted and raises, so a broken download never stays."""
    url = CIFAR10_URL if url is None else url
    md5 = CIFAR10_MD5 if md5 is None else md5
    data_dir = Path(data_dir)
    folder = data_dir / CIFAR10_FOLDER
    if _has_cifar10_files(folder):
        return folder
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / url.rsplit("/", 1)[-1]
    if not archive.exists() or _md5(archive) != md5:
        partial = archive.with_name(archive.name + ".part")
        _fetch(url, partial)
        got = _md5(partial)
        if got != md5:
            partial.unlink()
            raise RuntimeError(f"checksum mismatch for {url}: MD5 {got}, expected {md5}; the file was deleted, try again")
        partial.replace(archive)
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.split("/", 1)[0] == CIFAR10_FOLDER]
        for m in members:  # the archive holds one folder of plain files: refuse anything else
            if not (m.isfile() or m.isdir()) or ".." in Path(m.name).parts or Path(m.name).is_absolute():
                raise RuntimeError(f"unexpected member {m.name!r} in {archive}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.12 (and security releases before it)
            tar.extractall(data_dir, members=members, filter="data")
        else:
            tar.extractall(data_dir, members=members)
    if not _has_cifar10_files(folder):
        raise RuntimeError(f"{archive} did not contain {CIFAR10_FOLDER}/ with {', '.join(_cifar10_files())}")
    return folder


def _cifar10_files() -> tuple[str, ...]:
    return (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE)


def _has_cifar10_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _cifar10_files())


def _find_cifar10(data_dir: Path) -> Path | None:
    """`data_dir` may be the folder holding `cifar-10-batches-py/` or that folder itself."""
    for folder in (data_dir / CIFAR10_FOLDER, data_dir):
        if _has_cifar10_files(folder):
            return folder
    return None


def _unpickle(path: Path) -> dict:
    """One CIFAR batch file: a Python 2 pickle whose dict keys are bytes (b'data', b'labels')."""
    with open(path, "rb") as f:
        content = pickle.load(f, encoding="bytes")
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch file (expected a pickled dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} has no 'data'/'labels' entries; is it a CIFAR-10 batch file?")
    data = np.asarray(batch["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: data must be uint8 rows of 3072 values (R, G, B planes of 32x32), got {data.shape}")
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels  # each row: 1024 red, 1024 green, 1024 blue, row-major


def cifar10(
    data_dir: str | os.PathLike = "data",
    download: bool = False,
    seed: int = 0,
    val_size: int = 5000,
    normalize: bool = True,
) -> Dataset:
    """CIFAR-10 (60,000 32x32 colour images, 10 classes) from its standard python files.

    data_dir    the folder holding `cifar-10-batches-py/` (or that folder itself)
    download    fetch the official archive, check its MD5 and extract it when the files are missing
    seed        seeds the stratified validation split taken from the 50,000 training images
    val_size    how many training images are held out for validation (architecture selection);
                the official 10,000-image `test_batch` is the test split
    normalize   standardise with the training split's per-channel mean and std (else [0, 1])
    """
    data_dir = Path(data_dir)
    seed = _seed(seed)
    val_size = _positive_int("val_size", val_size)
    folder = _find_cifar10(data_dir)
    if folder is None:
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 not found in {data_dir} (expected {data_dir / CIFAR10_FOLDER}/ with "
                f"{', '.join(_cifar10_files())}). Get it with `edgeai search ... --download`, "
                f"or cifar10({str(data_dir)!r}, download=True), or extract {CIFAR10_URL} there yourself."
            )
        folder = download_cifar10(data_dir)
    parts = [_read_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_train_all = np.concatenate([p[0] for p in parts])
    y_train_all = np.concatenate([p[1] for p in parts])
    x_test, y_test = _read_batch(folder / CIFAR10_TEST_FILE)
    if val_size >= len(y_train_all):
        raise ValueError(f"val_size={val_size} must be smaller than the {len(y_train_all)} training images")
    meta = _unpickle(folder / CIFAR10_META_FILE)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", []))
    num_classes = len(names) if names else int(max(y_train_all.max(), y_test.max())) + 1

    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
        np.arange(len(y_train_all)), test_size=val_size, stratify=y_train_all, random_state=seed
    )
    xs = [torch.from_numpy(a).float().div_(255.0) for a in (x_train_all[train], x_train_all[val], x_test)]
    ys = [torch.from_numpy(a) for a in (y_train_all[train], y_train_all[val], y_test)]
    if normalize:
        xs, mean, std = _normalise(*xs)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return Dataset(
        name="cifar10",
        train=Split(xs[0], ys[0]),
        val=Split(xs[1], ys[1]),
        test=Split(xs[2], ys[2]),
        num_classes=num_classes,
        classes=names or tuple(str(c) for c in range(num_classes)),
        input_shape=(3, 32, 32),
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def synthetic(
    n: int,
    shape: Sequence[int] = (3, 32, 32),
    num_classes: int = 10,
    seed: int = 0,
    n_val: int | None = None,
    n_test: int | None = None,
    noise: float = 1.0,
) -> Dataset:
    """A random dataset of any shape, for throughput tests: each class has a Gaussian prototype
    image, and a sample is its class's prototype plus Gaussian noise of std `noise` (so the task
    is learnable, and easy when `noise` is small). `n` training samples; `n_val` and `n_test`
    default to n // 5 (at least 1)."""
    n = _positive_int("n", n)
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W), got {shape}")
    for i, s in enumerate(shape):
        _positive_int(f"shape[{i}]", s)
    num_classes = _positive_int("num_classes", num_classes)
    seed = _seed(seed)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    n_val = max(1, n // 5) if n_val is None else _positive_int("n_val", n_val)
    n_test = max(1, n // 5) if n_test is None else _positive_int("n_test", n_test)

    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn((num_classes, *shape), generator=g)  # (K, C, H, W)

    def make(count: int) -> Split:
        y = torch.randint(num_classes, (count,), generator=g)  # (N,)
        x = prototypes[y] + noise * torch.randn((count, *shape), generator=g)  # (N, C, H, W)
        return Split(x, y)

    channels = shape[0]
    return Dataset(
        name="synthetic",
        train=make(n),
        val=make(n_val),
        test=make(n_test),
        num_classes=num_classes,
        classes=tuple(str(c) for c in range(num_classes)),
        input_shape=shape,  # type: ignore[arg-type]
        mean=(0.0,) * channels,
        std=(1.0,) * channels,
    )


# --------------------------------------------------------------------------------------------
# Mini-batches from tensors already on the device
# --------------------------------------------------------------------------------------------


def batches(
    split: Split,
    batch_size: int,
    rng: int | torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches `(x, y)` of a split, sliced from the tensors where they lie (CPU or GPU).

    rng         None: in order. An integer seed or a CPU `torch.Generator`: shuffled (a generator
                carries on across epochs, so pass the same one every epoch for a new order each)
    drop_last   skip a last, smaller batch (e.g. for BatchNorm, which cannot train on one sample)

    The permutation is drawn on the CPU (the same on every machine) and moved to the device once
    per epoch; the loop itself never synchronises with the host.
    """
    batch_size = _positive_int("batch_size", batch_size)
    n = len(split)
    if rng is None:
        order = None
    else:
        if isinstance(rng, torch.Generator):
            if rng.device.type != "cpu":
                raise ValueError("rng must be a CPU torch.Generator (the permutation is drawn on the CPU)")
            generator = rng
        else:
            generator = torch.Generator().manual_seed(_seed(rng, "rng"))
        order = torch.randperm(n, generator=generator).to(split.x.device, non_blocking=True)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            index = order[start : start + batch_size]
            yield split.x[index], split.y[index]
