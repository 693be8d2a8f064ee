"""symexp audit: a symmetry and collapse report for any trained network (seed 002's collapses, seed
004's mirror constraints, seed 000's mirror pairs and partial defects). ``python -m symexp.audit TARGET``;
in code, ``audit_model(model, x)``; in a run, ``+audit=on``."""

from symexp.audit.core import SCHEMA, Audit, audit_model
from symexp.audit.options import AuditOptions

__all__ = ["SCHEMA", "Audit", "AuditOptions", "audit_model"]
