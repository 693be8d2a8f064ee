"""Vision data readers, models and the pure representation-rank functions (symexp issue 5)."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from symexp.data.vision import VisionData, read_idx
from symexp.models.cnn import CNN
from symexp.models.fcn import FCN
from symexp.models.identical_neurons import IdenticalNeuronsNet
from symexp.models.resnet18 import ResNet18
from symexp.models.simclr import SimCLRNet
from symexp.models.vae import VAE
from symexp.models.vision_common import reinitialize
from symexp.models.vit import ViT
from symexp.symmetry.rank import covariance_rank, low_rankness
from symexp.symmetry.representation import capture, ntk_ranks, permutation_rank_bound
from symexp.tasks.lmc import barrier
from symexp.tasks.simclr import nt_xent
from symexp.tasks.vae import kl_to_prior


# ---------------------------------------------------------------------------------------------- readers
def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reader_loads_idx_files(tmp_path, gz):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (6, 28, 28)), "t10k": rng.integers(0, 256, (4, 28, 28))}
    labels = {"train": np.arange(6) % 10, "t10k": np.arange(4)}
    for split in ("train", "t10k"):
        _write_idx(folder / f"{split}-images-idx3-ubyte", images[split], gz)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", labels[split], gz)
    assert read_idx(next(folder.glob("train-images*"))).shape == (6, 28, 28)
    dm = VisionData(source="fashion_mnist", data_dir=str(tmp_path), normalize=False, alpha=2.0)
    assert dm.x_train.shape == (6, 1, 28, 28) and dm.x_test.shape == (4, 1, 28, 28)
    assert torch.equal(dm.y_train, torch.as_tensor(labels["train"]))
    assert torch.allclose(dm.x_train[0, 0], 2.0 * torch.as_tensor(images["train"][0], dtype=torch.float32) / 255)


@pytest.mark.parametrize("source", ["cifar10", "cifar100"])
def test_cifar_reader_loads_pickles(tmp_path, source):
    rng = np.random.default_rng(1)
    if source == "cifar10":
        folder, names, key, classes = tmp_path / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 10
    else:
        folder, names, key, classes = tmp_path / "cifar-100-python", ["train", "test"], b"fine_labels", 100
    folder.mkdir()
    first = None
    for name in names:
        data = rng.integers(0, 256, (3, 3072)).astype(np.uint8)
        first = data if first is None else first
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, key: [1, 2, classes - 1]}, f)
    dm = VisionData(source=source, data_dir=str(tmp_path), channels=3, image_size=32, num_classes=classes, normalize=False)
    assert dm.x_train.shape == (3 * (len(names) - 1), 3, 32, 32) and dm.x_test.shape == (3, 3, 32, 32)
    # channel-major rows: the first 1024 bytes are the red plane
    assert torch.allclose(dm.x_train[0, 0].flatten(), torch.as_tensor(first[0, :1024], dtype=torch.float32) / 255)
    assert int(dm.y_train.max()) == classes - 1


def test_missing_dataset_names_folder_and_files(tmp_path):
    with pytest.raises(ValueError, match=r"^data\.data_dir: .*mnist.*train-images-idx3-ubyte.*download"):
        VisionData(source="mnist", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"^data\.data_dir: .*cifar-10-batches-py.*data_batch_1"):
        VisionData(source="cifar10", data_dir=str(tmp_path), channels=3, image_size=32)


def test_wrong_shape_and_source_raise_with_key():
    with pytest.raises(ValueError, match=r"^data\.image_size"):
        VisionData(source="digits", image_size=28)
    with pytest.raises(ValueError, match=r"^data\.source"):
        VisionData(source="imagenet")


def test_digits_and_synthetic_and_permutations():
    dm = VisionData(source="digits", image_size=8, permutations=2)
    assert dm.x_train.shape[1:] == (1, 8, 8) and len(dm.x_train) + len(dm.x_test) == 1797
    x0, _ = dm.split("test", task=0)
    x2, _ = dm.split("test", task=2)
    perm = dm.permutation_list[2]
    assert torch.equal(x2.flatten(2), x0.flatten(2)[:, :, perm]) and not torch.equal(x0, x2)
    again = VisionData(source="digits", image_size=8, permutations=2)
    assert torch.equal(again.permutation_list[2], perm)  # fixed, seeded
    syn = VisionData(source="synthetic", channels=3, image_size=6, num_classes=4, n_train=64, n_test=32)
    assert syn.x_train.shape == (64, 3, 6, 6) and int(syn.y_train.max()) < 4
    pooled = VisionData(source="digits", image_size=4, downsample=2)
    assert pooled.x_train.shape[1:] == (1, 4, 4)


# ---------------------------------------------------------------------------------------------- models
MODELS = {
    "fcn": lambda: (FCN(1, 8, 10, width=16, depth=4), (3, 1, 8, 8)),
    "identical": lambda: (IdenticalNeuronsNet(1, 8, 10, width=16, identical_fraction=0.5), (3, 1, 8, 8)),
    "cnn": lambda: (CNN(1, 28, 10), (3, 1, 28, 28)),
    "cnn_small": lambda: (CNN(1, 8, 10, padding=2), (3, 1, 8, 8)),
    "resnet18": lambda: (ResNet18(3, 16, 10, width=4), (3, 3, 16, 16)),
    "vit": lambda: (ViT(3, 16, 10, dim=16, depth=2, heads=2, head_dim=8, mlp_dim=16), (3, 3, 16, 16)),
    "simclr": lambda: (SimCLRNet(3, 16, 100, width=4, head_hidden=16, out_dim=8), (3, 3, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_shapes_and_backward(name):
    model, shape = MODELS[name]()
    out = model(torch.randn(shape))
    assert out.shape == (3, 8 if name == "simclr" else 10)
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_vae_shapes_backward_and_kl():
    vae = VAE(1, 8, hidden=16, latent=4)
    recon, mu, logvar = vae(torch.rand(5, 1, 8, 8))
    assert recon.shape == (5, 1, 8, 8) and mu.shape == logvar.shape == (5, 4)
    (recon.sum() + kl_to_prior(mu, logvar, 0.01).sum()).backward()
    assert vae.encoder[0].weight.grad is not None
    zero = kl_to_prior(torch.zeros(2, 3), torch.full((2, 3), float(np.log(0.01))), 0.01)
    assert torch.allclose(zero, torch.zeros(2), atol=1e-6)  # q == prior


def test_models_are_seeded_and_refuse_ensembles():
    a, b = FCN(1, 8, width=8, seeds=[3]), FCN(1, 8, width=8, seeds=[3])
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = reinitialize(FCN(1, 8, width=8, seeds=[3]), 4)
    assert not torch.equal(a.head.weight, c.head.weight)
    with pytest.raises(ValueError, match=r"^ensemble\.size"):
        ResNet18(width=4, seeds=[0, 1])


def test_identical_neurons_stay_identical_without_syre():
    net = IdenticalNeuronsNet(1, 8, 10, width=12, identical=6)
    assert net.distinct_neurons() == 7
    opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-3)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert net.distinct_neurons() == 7  # the permutation-symmetric subspace is invariant under GD


# ---------------------------------------------------------------------------------------------- ranks
def test_covariance_rank_and_low_rankness_on_known_matrices():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(200, 3, generator=g) @ torch.randn(3, 10, generator=g)
    assert covariance_rank(f, 1e-8).item() == 3
    assert low_rankness(f, 1e-8).item() == pytest.approx(0.7)
    assert covariance_rank(torch.ones(50, 4), 1e-8).item() == 0  # constant features have no variance


def test_capture_hooks_named_layers_and_rejects_unknown():
    net = FCN(1, 8, width=16, depth=2)
    feats = capture(net, torch.randn(7, 1, 8, 8), ["body.0", "body.2"])
    assert feats["body.0"].shape == (7, 16) and (feats["body.2"] >= 0).all()
    with pytest.raises(ValueError, match=r"^metric\.layers"):
        capture(net, torch.randn(2, 1, 8, 8), ["nope"])


def test_ntk_rank_respects_the_permutation_bound():
    net = IdenticalNeuronsNet(1, 2, 3, width=6, identical=4, bias=False)  # P = 6 * 4 + 6 * 3 = 42
    x, y = torch.randn(40, 1, 2, 2), torch.randint(0, 3, (40,))
    bound = permutation_rank_bound(net)
    assert bound == 42 - 3 * (4 + 3)
    r = ntk_ranks(net, x, y)
    assert 0 < r["ntk_rank"] <= bound and r["grad_cov_rank"] <= bound


def test_nt_xent_and_barrier():
    z = torch.randn(8, 4)
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(8, 4), 0.1)
    assert barrier(np.array([1.0, 3.0, 1.0])) == pytest.approx(2.0)
    assert barrier(np.array([0.9, 0.5, 0.7]), higher_is_worse=False) == pytest.approx(0.3)
