"""The beta-VAE of seed 002 Sec. 6.4 (after Wang & Ziyin 2022): encoder and decoder are two-layer SiLU
networks, hidden and latent 200. The encoder outputs the posterior mean and log-variance; the prior is
N(0, prior_var I) (the paper's eta_enc = 0.01). Weight decay and syre go on the encoder only, selected
by the ``encoder.`` name prefix.

Layer names: ``encoder.0`` (hidden pre-activation), ``encoder.2`` (mean and log-variance), ``decoder.*``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from symexp.models.vision_common import seeded, single_seed


class VAE(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        hidden: int = 200,
        latent: int = 200,
        seeds: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        del num_classes  # unsupervised
        self.shape = (in_channels, image_size, image_size)
        self.latent = latent
        d = in_channels * image_size * image_size
        with seeded(single_seed(seeds, "vae")):
            self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent))
            self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.SiLU(), nn.Linear(hidden, d))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *self.shape)

    def forward(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decode(z), mu, logvar
