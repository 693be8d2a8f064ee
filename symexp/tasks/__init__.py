"""LightningModules, one per objective; they know nothing of Hydra."""
