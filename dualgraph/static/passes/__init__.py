"""Optimisation passes: pure ``Graph -> Graph`` functions that recurse into cond/while.

``optimize(graph)`` runs the default pipeline (dce, cse, fold, simplify, licm, dce).
"""
from .cse import cse
from .dce import dce
from .fold import fold
from .licm import licm
from .pipeline import DEFAULT, optimize
from .simplify import simplify

__all__ = ["DEFAULT", "cse", "dce", "fold", "licm", "optimize", "simplify"]
