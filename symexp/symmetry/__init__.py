"""Symmetry metrics: pure functions of tensors (defects.py, mirror.py, bounds.py, regime.py); adapters
that pull their inputs from a task (metrics.py); one callback that decides when to apply them."""
