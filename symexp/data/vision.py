"""Image classification data without torchvision: small readers of the standard file formats.

Sources: ``mnist`` and ``fashion_mnist`` (raw IDX files, gzipped or not), ``cifar10`` and ``cifar100``
(the python pickles), ``digits`` (scikit-learn's 8x8 digits, real and offline) and ``synthetic``
(seeded class templates plus noise, any shape, for tests). Real datasets load from ``data_dir``; when
they are missing the error names the folder, the expected files and how to get them.

Images become float tensors (N, C, H, W) in [0, 1], optionally standardised per channel, then scaled
by ``alpha`` (seed 002's input-output correlation knob). ``permutations`` > 0 adds that many fixed,
seeded pixel permutations of the whole dataset: the continual stream of permuted-MNIST (task 0 is the
original). Everything is held in memory as tensors; the loaders only slice them.
"""

from __future__ import annotations

import gzip
import pickle
import tarfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from symexp.data.sampling import EpochShuffle, quiet_generator
from symexp.schema import DataError
from symexp.seeding import generator

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_SOURCES = {
    "mnist": ("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion_mnist": ("fashion_mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
}
CIFAR_SOURCES = {
    "cifar10": ("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}
SHAPES = {  # (channels, image size, classes)
    "mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100),
    "digits": (1, 8, 10),
}
SOURCES = (*SHAPES, "synthetic")


# ---------------------------------------------------------------------------------------------- readers
def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format: magic, dims as big-endian int32, then uint8 data), gz or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"data.data_dir: {path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz", folder / "raw" / name, folder / "raw" / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def _missing(source: str, folder: Path, files: Sequence[str], how: str) -> ValueError:
    return ValueError(
        f"data.data_dir: dataset {source!r} not found in {folder} (expected {', '.join(files)}). "
        f"Set data.download=true where internet exists, or {how}, or point paths.data_dir elsewhere."
    )


def load_idx_dataset(source: str, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-format images (N, 28, 28) uint8 and labels (N,) from data_dir/<source>/ (or its raw/)."""
    folder = Path(data_dir) / IDX_SOURCES[source][0]
    names = IDX_FILES[split]
    paths = [_find(folder, n) for n in names]
    if any(p is None for p in paths):
        expected = [f"{n}[.gz]" for pair in IDX_FILES.values() for n in pair]
        raise _missing(source, folder, expected, f"download them from {IDX_SOURCES[source][1]} into that folder")
    return read_idx(paths[0]), read_idx(paths[1])


def load_cifar(source: str, data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR images (N, 32, 32, 3) uint8 and labels from the python-pickle batches."""
    folder_name, url = CIFAR_SOURCES[source]
    folder = Path(data_dir) / folder_name
    if source == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key = b"labels"
    else:
        names, label_key = [split], b"fine_labels"
    if not all((folder / n).exists() for n in names):
        expected = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if source == "cifar10" else ["train", "test"]
        raise _missing(source, folder, expected, f"download and untar {url} into {Path(data_dir)}")
    xs, ys = [], []
    for n in names:
        with open(folder / n, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _fetch(url: str, target: Path, source: str, files: Sequence[str], how: str) -> None:
    """Download url to target; without a network, a DataError naming the files and where they go."""
    partial = target.with_name(target.name + ".part")
    try:
        urllib.request.urlretrieve(url, partial)
    except OSError as exc:  # URLError, timeouts, refused connections are all OSErrors
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(
            "data.download",
            f"cannot fetch {url} ({reason}). Without internet, {how} (expected {', '.join(files)}) "
            f"and set data.download=false",
        ) from None
    partial.replace(target)


def download(source: str, data_dir: Path) -> None:
    """Fetch the standard files that are missing (needs internet; the offline error is tested)."""
    data_dir = Path(data_dir)
    if source in IDX_SOURCES:
        folder, base = IDX_SOURCES[source]
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
        expected = [f"{n}.gz" for pair in IDX_FILES.values() for n in pair]
        for pair in IDX_FILES.values():
            for name in pair:
                target = data_dir / folder / f"{name}.gz"
                if not target.exists() and _find(data_dir / folder, name) is None:
                    _fetch(base + f"{name}.gz", target, source, expected,
                           f"download them from {base} into {data_dir / folder}")
    elif source in CIFAR_SOURCES:
        folder, url = CIFAR_SOURCES[source]
        if not (data_dir / folder).exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            archive = data_dir / url.rsplit("/", 1)[1]
            if not archive.exists():
                _fetch(url, archive, source, [archive.name], f"download {url} into {data_dir}")
            with tarfile.open(archive) as tar:
                tar.extractall(data_dir, filter="data")


def synthetic_images(
    n: int, channels: int, size: int, classes: int, seed: int, signal: float = 1.0, template_seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class templates (shared by all splits via template_seed) plus per-sample noise, in [0, 1]."""
    templates = torch.rand(classes, channels, size, size, generator=generator(template_seed, "data"))
    g = generator(seed, "data")
    y = torch.randint(0, classes, (n,), generator=g)
    noise = torch.rand(n, channels, size, size, generator=g)
    x = (signal * templates[y] + noise) / (1.0 + signal)
    return x, y


def _as_tensors(images: np.ndarray, labels: np.ndarray, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).float() / scale  # IDX buffers are read-only
    if x.dim() == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))


def load_source(source: str, data_dir: Path, split: str, download_missing: bool = False):
    """(x, y) of a split as float images in [0, 1] and int64 labels."""
    if download_missing:
        download(source, data_dir)
    if source in IDX_SOURCES:
        return _as_tensors(*load_idx_dataset(source, data_dir, split), 255.0)
    if source in CIFAR_SOURCES:
        return _as_tensors(*load_cifar(source, data_dir, split), 255.0)
    if source == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        order = torch.randperm(len(d.target), generator=generator(0, "data")).numpy()
        cut = int(0.8 * len(order))
        idx = order[:cut] if split == "train" else order[cut:]
        return _as_tensors(d.images[idx].astype(np.float32), d.target[idx], 16.0)
    raise ValueError(f"data.source: unknown source {source!r}; choose one of {SOURCES}")


# ---------------------------------------------------------------------------------------------- datamodule
class VisionData(L.LightningDataModule):
    """In-memory image classification data; ``set_task(t)`` selects the permuted copy of a continual stream."""

    def __init__(
        self,
        source: str = "synthetic",
        data_dir: str = "data",
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        n_train: int | None = None,
        n_test: int | None = None,
        alpha: float = 1.0,
        normalize: bool = True,
        augment: bool = False,
        permutations: int = 0,
        permutation_seed: int = 0,
        signal: float = 1.0,
        downsample: int = 1,
        download: bool = False,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source: unknown source {source!r}; choose one of {SOURCES}")
        if downsample < 1:
            raise ValueError(f"data.downsample: must be >= 1, got {downsample}")
        if source in SHAPES and SHAPES[source] != (channels, image_size * downsample, num_classes):
            c, s, k = SHAPES[source]
            raise ValueError(
                f"data.image_size: {source} has channels={c}, image_size={s} (/ data.downsample={downsample}), "
                f"num_classes={k}; got {channels}, {image_size}, {num_classes}"
            )
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value <= 0:
                raise ValueError(f"data.{key}: must be positive, got {value}")
        if permutations < 0:
            raise ValueError(f"data.permutations: must be >= 0, got {permutations}")
        self.source, self.data_dir = source, Path(data_dir)
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.n_train, self.n_test, self.alpha, self.normalize = n_train, n_test, alpha, normalize
        self.augment, self.signal, self.download_missing = augment, signal, download
        self.downsample = downsample
        self.seed = int(seeds[0])
        self.task_count = 1 + permutations
        pixels = image_size * image_size
        self.permutation_list = [torch.arange(pixels)] + [
            torch.randperm(pixels, generator=generator(permutation_seed + 1 + t, "data")) for t in range(permutations)
        ]
        self.current_task = 0
        self.epochs_per_task: int | None = None  # set by a continual task: the stream advances with the epoch
        self.x_train = None
        self._load()

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if self.source == "synthetic":
            n_tr, n_te = self.n_train or 512, self.n_test or 256
            shape = (self.channels, self.image_size * self.downsample, self.num_classes)
            x_tr, y_tr = synthetic_images(n_tr, *shape, seed=self.seed * 2 + 1, signal=self.signal)
            x_te, y_te = synthetic_images(n_te, *shape, seed=self.seed * 2 + 2, signal=self.signal)
        else:
            x_tr, y_tr = load_source(self.source, self.data_dir, "train", self.download_missing)
            x_te, y_te = load_source(self.source, self.data_dir, "test", False)
            x_tr, y_tr = x_tr[: self.n_train], y_tr[: self.n_train]
            x_te, y_te = x_te[: self.n_test], y_te[: self.n_test]
        if self.downsample > 1:
            x_tr, x_te = (torch.nn.functional.avg_pool2d(x, self.downsample) for x in (x_tr, x_te))
        if self.normalize:
            mean = x_tr.mean((0, 2, 3), keepdim=True)
            std = x_tr.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
            x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
        self.x_train, self.y_train = self.alpha * x_tr, y_tr
        self.x_test, self.y_test = self.alpha * x_te, y_te

    def permute(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """The images of continual task ``task``: one fixed pixel permutation shared by all channels."""
        if task == 0:
            return x
        perm = self.permutation_list[task].to(x.device)
        return x.flatten(2)[:, :, perm].view_as(x)

    def set_task(self, task: int) -> None:
        if not 0 <= task < self.task_count:
            raise ValueError(f"data.permutations: task {task} outside the stream of {self.task_count} tasks")
        self.current_task = task

    def split(self, split: str, task: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All (x, y) of a split ('train' | 'test') for a task (default: the current one)."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        return self.permute(x, self.current_task if task is None else task), y

    def probe_inputs(self, n: int, split: str = "test") -> torch.Tensor:
        """The first n inputs of a split (fixed, so rank curves compare the same samples over time)."""
        return self.split(split)[0][:n]

    # ------------------------------------------------------------------ loaders
    def _stream_task(self) -> int:
        trainer = getattr(self, "trainer", None)
        if self.epochs_per_task and trainer is not None:
            return min(trainer.current_epoch // self.epochs_per_task, self.task_count - 1)
        return self.current_task

    def train_dataloader(self) -> DataLoader:
        self.current_task = self._stream_task()
        x, y = self.split("train")
        order = EpochShuffle(len(x), self.seed * 7919 + 3)
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size, sampler=order, drop_last=False, generator=quiet_generator())

    def val_dataloader(self) -> DataLoader:
        x, y = self.split("test")
        return DataLoader(TensorDataset(x, y), batch_size=self.eval_batch_size, generator=quiet_generator())

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
