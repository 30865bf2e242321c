"""dg.nn: neural-network helpers (functional for now; modules arrive with the bench issue)."""
from . import functional

__all__ = ["functional"]
