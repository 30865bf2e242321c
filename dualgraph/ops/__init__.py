"""ops: the primitive registry (rules per primitive) and composites written in primitives."""
from . import composites, primitives
from . import math_ops, shape_ops, nn_ops, more_composites  # issue 10: op breadth, conv and pooling
from .registry import PRIMITIVES, Primitive, ShapedArray, aval_of, bind, dtype_short, register

__all__ = ["PRIMITIVES", "Primitive", "ShapedArray", "aval_of", "bind", "dtype_short", "register",
           "primitives", "composites"]
