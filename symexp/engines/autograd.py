"""Reference engine: plain autograd + any torch optimizer, looped over the S steps of a chunk."""

from __future__ import annotations

import torch
from torch import nn


class AutogradEngine:
    """S sequential batch-1 steps for every member: loss_k = (f_k(x_k) - y_k)^2, summed over members
    (members share no parameters, so each gets exactly its own gradient)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, hooks=None) -> None:
        self.model, self.optimizer, self.hooks = model, optimizer, hooks
        self.params = [p for p in model.parameters() if p.requires_grad]

    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (K, S, d), y (K, S) -> pre-update losses (K, S)."""
        losses = torch.empty_like(y)
        for s in range(x.shape[1]):
            for p in self.params:
                p.grad = None
            err = self.model(x[:, s : s + 1]) - y[:, s : s + 1]  # (K, 1)
            loss = err.square()
            loss.sum().backward()
            if self.hooks is not None:
                self.hooks.before_step(self.model, self.optimizer)
            self.optimizer.step()
            if self.hooks is not None:
                self.hooks.after_step(self.model, self.optimizer)
            losses[:, s] = loss.detach()[:, 0]
        return losses

    def info(self) -> dict:
        """What ran, for results.json env.engine (``fallback``: why the fused kernel did not)."""
        return {"name": "autograd", "fallback": getattr(self, "fallback", None)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
