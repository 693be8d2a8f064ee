"""Per-member randomness: every ensemble member draws from its own seed, so member k of an ensemble
equals a solo run with seed k."""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Distinct streams per purpose, so e.g. adding a data draw does not shift the init of a model.
STREAMS = {"model": 0, "data": 1, "order": 2, "val": 3, "eval": 4, "syre": 5, "noise": 6, "test": 7}


def member_seeds(seed: int, size: int) -> list[int]:
    """Seeds of an ensemble: member k gets seed + k."""
    return [int(seed) + k for k in range(int(size))]


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one member and one purpose."""
    g = torch.Generator()
    g.manual_seed(int(seed) * 1_000_003 + STREAMS[stream] * 7_919 + 17)
    return g


def stacked(seeds: Sequence[int], stream: str, fn) -> torch.Tensor:
    """Stack fn(generator) over members: the (K, ...) tensor whose slice k depends only on seeds[k]."""
    return torch.stack([fn(generator(s, stream)) for s in seeds])


def _mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finaliser on int64 tensors (wrapping arithmetic): a counter-based hash."""
    x = x ^ (x >> 30)
    x = x * -4658895280553007687  # 0xbf58476d1ce4e5b9 as signed int64
    x = x ^ (x >> 27)
    x = x * -7723592293110705685  # 0x94d049bb133111eb
    return x ^ (x >> 31)


def epoch_orders(seeds: Sequence[int], epochs: torch.Tensor | int, n: int, device=None) -> torch.Tensor:
    """Data order of every member for the given epochs, as (K, E, n) indices into its training set.

    Counter-based (a hash of seed, epoch and index), so it is vectorised over members and epochs yet
    member k's order depends only on its own seed: the ensemble and the solo run see the same stream.
    """
    ep = torch.as_tensor(epochs, dtype=torch.int64, device=device).reshape(-1)
    s = torch.as_tensor(list(seeds), dtype=torch.int64, device=device)
    key = _mix64(s * 0x2545F4914F6CDD1D + STREAMS["order"])[:, None, None]
    ctr = ep[None, :, None] * n + torch.arange(n, device=device)[None, None, :]
    return torch.argsort(_mix64(key ^ _mix64(ctr)), dim=-1)
