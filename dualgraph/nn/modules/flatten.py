"""Flatten, Unflatten."""
from __future__ import annotations

from ...ops import composites as C
from ..module import Module


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):  # noqa: A002
        nd = input.ndim
        if nd == 0:
            return C.reshape(input, (1,))
        s, e = self.start_dim % nd, self.end_dim % nd
        if s > e:
            raise RuntimeError(f"flatten() has invalid args: start_dim {self.start_dim} cannot come after "
                               f"end_dim {self.end_dim}")
        shape = tuple(input.shape)
        n = 1
        for d in shape[s:e + 1]:
            n *= d
        return C.reshape(input, shape[:s] + (n,) + shape[e + 1:])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):  # noqa: A002
        d = self.dim % input.ndim
        shape = tuple(input.shape)
        return C.reshape(input, shape[:d] + self.unflattened_size + shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
