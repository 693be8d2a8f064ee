"""Symmetry discovery (seed 003: learned generators and group actions, lifting to larger networks) and
mirror-symmetry tools (seed 004: mirrors O, the constraint O^T theta = 0, DCS)."""
