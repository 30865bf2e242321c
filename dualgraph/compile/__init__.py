"""compile: dg.compile -- optimized graphs lowered to fused numba kernels, with signature
and disk caches."""
