"""symexp: experiments on symmetry in neural-network weight space."""

__version__ = "0.1.0"
