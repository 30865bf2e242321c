"""The math library's function names per scalar op and dtype (``mathlib.MATH``), kept apart
from ``mathlib`` so that the code generator can read them without importing numba (a first
call may run before numba is imported: compile/kernel.py, tiered start)."""

MATH = {
    op: {"float32": f"{op}_f32", "float64": f"{op}_f64"}
    for op in ("exp", "log", "tanh", "sigmoid", "erf", "expm1", "log1p")
}
MATH["maximum"] = {"float32": "fmax", "float64": "fmax"}
MATH["minimum"] = {"float32": "fmin", "float64": "fmin"}
MATH["floor_divide"] = {"float32": "floor_divide_f32", "float64": "floor_divide_f64"}
