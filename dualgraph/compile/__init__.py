"""Compilation of dualgraph IR to numba kernels (the code generator lives here)."""
