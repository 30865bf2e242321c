"""autograph: Python ``if``/``while``/``for`` on tensors, converted to ``cond``/``while``.

``convert(fn)`` rewrites the source of ``fn`` (with the ``ast`` module, see
``autograph_ast.py``) so that each ``if``, ``while``, ``for``, ``a if c else b`` and
``and``/``or``/``not`` calls a runtime operator (``autograph_runtime.py``) that decides,
when it runs, whether its condition or loop state is a traced tensor (then it stages a
graph ``cond``/``while``, as ``dg.cond``/``dg.while_loop`` do) or a Python value (then it
runs the plain Python statement).  ``dg.trace`` (and the compiler) convert the function
they are given before tracing; functions it calls are converted when they are called.

    def forward(x, n):
        result = x
        for i in range(n):
            if result.sum() > 0:
                result = result * 2
            else:
                result = result + 1
        return result

    g = dg.trace(forward, dg.ones(3), 500)   # one while containing one cond
    print(g.source)                          # the converted code

What is converted: functions and lambdas whose source ``inspect`` can find (not
builtins, C extensions or code made by ``exec``: those are traced as they are), outside
dualgraph, numpy and the standard library, and not marked ``@do_not_convert``.  The
eager behaviour of a function never changes: it is only the converted copy that runs,
and only under ``dg.trace``/``dg.compile``.  The converted code keeps the user's file
name and line numbers, so tracebacks, warnings and the source lines of traced equations
point at the original code.

Environment: ``DUALGRAPH_AUTOGRAPH=0`` turns conversion off; ``DUALGRAPH_AUTOGRAPH_VERBOSE=1``
prints the converted code of each function when it is converted.

How loops decide (the runtime, ``autograph_runtime.py``):

* ``while``: a Python loop while its test is a Python value; a graph ``while`` from the
  first iteration whose test is a traced tensor.
* ``for`` over ``range(...)`` or a tensor: a graph ``while`` as soon as a variable it
  carries holds a tensor (or a bound is traced), whatever the trip count; iterations
  before that (pure Python bookkeeping) run in Python.  If the body needs the loop index
  as a Python int (``layers[i]``), the loop stays a Python loop, unrolled.
* ``for`` over anything else (lists, ``zip``, ``enumerate``, dicts): a Python loop.
* carried variables: tensors, Python numbers (promoted to 0-d tensors of the dtype the
  loop gives them), and tuples/lists/dicts of those; other Python values must not change.

Limitations (each raises a clear error or is traced as Python would run it):

* a Python side effect inside a graph ``cond``/``while`` (``list.append``, ``d[k] = v``,
  assigning a global) is refused: the body is traced once; ``print`` and other side
  effects run once, while tracing;
* ``raise``/``assert`` in a branch whose condition is traced run while tracing (both
  branches are traced), so they raise whatever the data;
* in-place ops (``x += y``) on traced tensors are functional: another name bound to the
  same tensor does not see the update (as under ``dg.grad``);
* the filters of comprehensions (``[f(x) for x in xs if c]``), generators, ``async``
  functions and class bodies are not converted (Python control flow there runs as
  Python); neither is the code of installed packages (site-packages);
* ``break``/``return`` out of a Python loop over a non-range iterable whose flag becomes
  a traced tensor unroll the remaining iterations as conds.
"""
from __future__ import annotations

import ast
import builtins
import functools
import inspect
import linecache
import os
import sys
import sysconfig
import threading
import types
import warnings
import weakref

import numpy as np

from ..ops import context as _context
from . import autograph_ast as A
from . import autograph_runtime as R
from .autograph_runtime import AutographError, Undefined, is_traced
from .tracer import TracerError, trace_function

__all__ = ["convert", "to_source", "do_not_convert", "AutographError", "AutographWarning",
           "is_traced", "Undefined"]


class AutographWarning(UserWarning):
    """A function could not be converted and is traced as it is."""


_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LIB_DIRS = tuple(
    {os.path.abspath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
     if (p := sysconfig.get_paths().get(key))}
)
_SKIP_MODULES = frozenset(
    "dualgraph numpy scipy torch jax jaxlib numba pytest _pytest hypothesis pluggy "
    "matplotlib tqdm builtins functools itertools operator collections typing abc "
    "contextlib copy inspect ast".split()
)
_CO_SKIP = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | getattr(
    inspect, "CO_ITERABLE_COROUTINE", 0)

_lock = threading.RLock()
_CODE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # code -> (code, source) | None
_FN_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # fn -> (code, defaults, new)
_CONVERTED_CODES: "weakref.WeakSet" = weakref.WeakSet()
_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # new code -> source text
_WARNED: set = set()


def _enabled():
    return os.environ.get("DUALGRAPH_AUTOGRAPH", "1") not in ("0", "false", "False", "")


def do_not_convert(fn):
    """Decorator: ``fn`` (and what it calls) is traced as written, never converted."""
    try:
        fn.__dg_do_not_convert__ = True
    except AttributeError:
        pass
    return fn


def always_convert(fn):
    """Decorator: convert ``fn`` although it lives in dualgraph's own package (for code
    written as a user would write it and shipped with dualgraph: ``dualgraph.bench``)."""
    fn.__dg_convert__ = True
    return fn


# ----------------------------------------------------------------------------------------
# which functions are converted
# ----------------------------------------------------------------------------------------


def _is_library_code(code):
    f = code.co_filename
    return f.startswith(_PKG) or f.startswith(_LIB_DIRS) or f.startswith("<frozen")


def _user_function(fn):
    if not isinstance(fn, types.FunctionType):
        return False
    if getattr(fn, "__dg_do_not_convert__", False):
        return False
    if getattr(fn, "__dg_convert__", False):
        return not fn.__code__.co_flags & _CO_SKIP
    mod = (getattr(fn, "__module__", None) or "").split(".")[0]
    if mod in _SKIP_MODULES:
        return False
    code = fn.__code__
    if code.co_flags & _CO_SKIP or _is_library_code(code):
        return False
    return True


# ----------------------------------------------------------------------------------------
# finding the source of a function
# ----------------------------------------------------------------------------------------

_PARSED: dict = {}


def _module_tree(filename, module_globals):
    lines = linecache.getlines(filename, module_globals)
    if not lines:
        return None
    text = "".join(lines)
    key = (filename, hash(text))
    index = _PARSED.get(key)
    if index is None:
        # functions by (name, line) and lambdas by line: one walk per file
        index = {}
        for n in ast.walk(ast.parse(text, filename)):
            if isinstance(n, ast.FunctionDef):
                index.setdefault((n.name, n.lineno), []).append(n)
                if n.decorator_list:
                    index.setdefault((n.name, n.decorator_list[0].lineno), []).append(n)
            elif isinstance(n, ast.Lambda):
                index.setdefault(("<lambda>", n.lineno), []).append(n)
        _PARSED[key] = index
    return index


def _arg_names(args):
    return [a.arg for a in A._all_args(args)]


def _code_arg_names(code):
    n = code.co_argcount + code.co_kwonlyargcount
    if code.co_flags & inspect.CO_VARARGS:
        n += 1
    if code.co_flags & inspect.CO_VARKEYWORDS:
        n += 1
    return list(code.co_varnames[:n])


def _find_node(fn):
    """The ``FunctionDef``/``Lambda`` node of ``fn`` in its file, or None."""
    code = fn.__code__
    index = _module_tree(code.co_filename, fn.__globals__)
    if index is None:
        return None
    want_args = sorted(_code_arg_names(code))
    cands = [n for n in index.get((code.co_name, code.co_firstlineno), ())
             if sorted(_arg_names(n.args)) == want_args]
    cands = list({id(n): n for n in cands}.values())
    if code.co_name == "<lambda>" and len(cands) > 1:
        pos = [p for p in code.co_positions() if p[0] is not None and p[2] is not None]
        cands = [n for n in cands if pos and all(_inside(n, p) for p in pos)]
    return cands[0] if len(cands) == 1 else None


def _inside(node, pos):
    line, end_line, col, end_col = pos
    if (line, col) < (node.lineno, node.col_offset):
        return False
    return (end_line, end_col) <= (node.end_lineno, node.end_col_offset)


# ----------------------------------------------------------------------------------------
# which calls need no conversion wrapper (readability of the generated code)
# ----------------------------------------------------------------------------------------

_TENSOR_METHODS = None


def _tensor_methods():
    global _TENSOR_METHODS
    if _TENSOR_METHODS is None:
        from ..eager.tensor import Tensor

        _TENSOR_METHODS = frozenset(n for n in dir(Tensor) if not n.startswith("_"))
    return _TENSOR_METHODS


def _higher_order():
    from ..eager import transforms
    from . import control_flow

    return (transforms.grad, transforms.value_and_grad, control_flow.cond,
            control_flow.while_loop, control_flow.fori_loop)


def _plain_callee(obj):
    """A callee that needs no conversion and takes no user function to convert."""
    if isinstance(obj, types.BuiltinFunctionType) or isinstance(obj, np.ufunc):
        return True
    if isinstance(obj, type):
        return (obj.__module__ or "").split(".")[0] in ("builtins", "numpy", "dualgraph")
    if isinstance(obj, types.FunctionType):
        mod = (obj.__module__ or "").split(".")[0]
        return mod in ("numpy", "dualgraph", "math") and not any(obj is h for h in _higher_order())
    return False


def _resolver(fn):
    glob = fn.__globals__

    def no_wrap_global(name, chain=()):
        if name == A.RT:
            return True
        if name in glob:
            obj = glob[name]
        elif hasattr(builtins, name):
            obj = getattr(builtins, name)
        else:
            return False
        for attr in chain:
            if not isinstance(obj, types.ModuleType):
                return False
            obj = getattr(obj, attr, None)
            if obj is None:
                return False
        return _plain_callee(obj)

    def no_wrap_attr(attr):
        return attr in _tensor_methods()

    return A.Resolver(no_wrap_global, no_wrap_attr)


# ----------------------------------------------------------------------------------------
# conversion
# ----------------------------------------------------------------------------------------


def _method_class(fn):
    """The class name a method was defined in (for name mangling and ``super()``)."""
    parts = fn.__qualname__.split(".")
    if len(parts) >= 2 and parts[-2] != "<locals>":
        return parts[-2]
    return None


def _find_code(code, name, depth=2):
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            if c.co_name == name:
                return c
            if depth > 1:
                found = _find_code(c, name, depth - 1)
                if found is not None:
                    return found
    return None


def _renamed(code, name, qualname):
    """``code`` with its generated nested functions (branches, loop bodies) named like the
    user's function, so tracebacks read ``in forward``, not ``in _ag_if_true_3``."""
    consts = tuple(_renamed(c, name, qualname) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    kw = {"co_consts": consts}
    if code.co_name.startswith("_ag_"):
        kw.update(co_name=name, co_qualname=qualname)
    return code.replace(**kw)


def _register(code):
    _CONVERTED_CODES.add(code)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _register(c)


def _convert_code(fn):
    """(converted code object, source text) for ``fn``'s code, or None."""
    code = fn.__code__
    node = _find_node(fn)
    if node is None:
        return None
    cls = _method_class(fn)
    self_name = None
    if cls and isinstance(node, ast.FunctionDef) and node.args.args:
        self_name = node.args.args[0].arg
    new = A.convert_node(node, _resolver(fn), self_name if "__class__" in code.co_freevars else None)
    if isinstance(new, ast.Lambda):
        shown = ast.unparse(new)
        inner = [ast.Return(value=new)]
    else:
        shown = ast.unparse(new)
        inner = [new]
    if cls:
        inner = [ast.ClassDef(name=cls, bases=[], keywords=[], body=inner, decorator_list=[])]
        if isinstance(new, ast.Lambda):
            return None
    freevars = [v for v in code.co_freevars if v != "__class__"]
    if not cls and isinstance(new, ast.FunctionDef) and new.name not in freevars:
        # the def must not make its own name a local of the factory (recursion reads
        # the global, as the original does)
        inner = [ast.Global(names=[new.name])] + inner
    factory = ast.FunctionDef(
        name="_ag_factory", args=A._args([A.RT] + freevars),
        body=inner + ([] if isinstance(new, ast.Lambda) else [ast.Return(value=ast.Constant(None))]),
        decorator_list=[], returns=None, type_comment=None)
    for n in [factory] + ([inner[0]] if cls else []):
        n.lineno, n.col_offset = new.lineno, 0
        n.end_lineno, n.end_col_offset = new.lineno, 0
    module = ast.Module(body=[factory], type_ignores=[])
    ast.fix_missing_locations(module)
    mod_code = compile(module, code.co_filename, "exec", dont_inherit=True)
    fac_code = _find_code(mod_code, "_ag_factory", 1)
    target = _find_code(fac_code, code.co_name, 2 if cls else 1)
    if target is None:
        return None
    target = _renamed(target, code.co_name, code.co_qualname)
    _register(target)
    _SOURCES[target] = shown
    return target, shown


def _build(fn, new_code):
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
    closure = []
    for name in new_code.co_freevars:
        if name == A.RT:
            closure.append(types.CellType(_RUNTIME))
        elif name in cells:
            closure.append(cells[name])
        else:
            return None
    new = types.FunctionType(new_code, fn.__globals__, fn.__name__, fn.__defaults__,
                             tuple(closure) or None)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__qualname__ = fn.__qualname__
    new.__module__ = fn.__module__
    new.__doc__ = fn.__doc__
    new.__annotations__ = fn.__annotations__
    return new


def _warn_once(fn, reason):
    key = (fn.__code__.co_filename, fn.__code__.co_firstlineno)
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn_explicit(
        f"dualgraph could not convert {fn.__qualname__} ({reason}); it is traced as written, "
        "so Python control flow on traced tensors in it raises",
        AutographWarning, fn.__code__.co_filename, fn.__code__.co_firstlineno)


def _convert_function(fn):
    code = fn.__code__
    if code in _CONVERTED_CODES:
        return fn
    with _lock:
        hit = _FN_CACHE.get(fn)
        if hit is not None and hit[0] is code and hit[1] is fn.__defaults__:
            return hit[2]
        if code in _CODE_CACHE:
            entry = _CODE_CACHE[code]
        else:
            try:
                entry = _convert_code(fn)
            except (SyntaxError, OSError, A.ConversionUnsupported):
                entry = None
            except Exception as e:  # noqa: BLE001 - a converter bug must not break tracing
                _warn_once(fn, f"{type(e).__name__}: {e}")
                entry = None
            _CODE_CACHE[code] = entry
        new = fn if entry is None else (_build(fn, entry[0]) or fn)
        if new is not fn and os.environ.get("DUALGRAPH_AUTOGRAPH_VERBOSE"):
            print(f"# dualgraph autograph: {fn.__qualname__} "
                  f"({code.co_filename}:{code.co_firstlineno})\n{entry[1]}\n", file=sys.stderr)
        _FN_CACHE[fn] = (code, fn.__defaults__, new)
        return new


def _is_transform_wrapper(fn):
    # functools.wraps copies the user's __module__: recognise dg.grad's wrappers by file
    from ..eager import grad_mode, transforms

    return fn.__code__.co_filename in (transforms.__file__, grad_mode.__file__)


def _convert_wrapper(fn):
    """``dg.grad(f)`` / ``dg.value_and_grad(f)``: the same wrapper around converted ``f``."""
    if not fn.__closure__:
        return fn
    hit = _FN_CACHE.get(fn)
    if hit is not None and hit[0] is fn.__code__:
        return hit[2]
    cells, changed = [], False
    for cell in fn.__closure__:
        try:
            v = cell.cell_contents
        except ValueError:
            cells.append(cell)
            continue
        nv = convert(v) if callable(v) else v
        changed |= nv is not v
        cells.append(types.CellType(nv) if nv is not v else cell)
    new = fn
    if changed:
        new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(cells))
        new.__dict__.update(fn.__dict__)
        new.__qualname__ = fn.__qualname__
        if getattr(fn, "__wrapped__", None) is not None:
            new.__wrapped__ = convert(fn.__wrapped__)
    _FN_CACHE[fn] = (fn.__code__, None, new)
    return new


def convert(fn):
    """The converted version of ``fn`` (cached per function object and closure), or
    ``fn`` itself where there is nothing to convert.

    Accepts functions, lambdas, bound methods, ``functools.partial`` objects, instances
    with a ``__call__`` method and ``dg.grad``/``dg.value_and_grad`` of those.  What the
    compiler calls before tracing, exactly as ``dg.trace`` does."""
    if not _enabled():
        return fn
    if isinstance(fn, types.FunctionType):
        if _user_function(fn):
            return _convert_function(fn)
        if _is_transform_wrapper(fn):
            return _convert_wrapper(fn)
        return fn
    if isinstance(fn, types.MethodType):
        f = convert(fn.__func__)
        return fn if f is fn.__func__ else types.MethodType(f, fn.__self__)
    if isinstance(fn, functools.partial):
        f = convert(fn.func)
        return fn if f is fn.func else functools.partial(f, *fn.args, **fn.keywords)
    call = getattr(type(fn), "__call__", None)
    if isinstance(call, types.FunctionType) and _user_function(call) and not isinstance(fn, type):
        f = convert(call)
        return fn if f is call else types.MethodType(f, fn)
    return fn


def _convert_args(hof):
    @functools.wraps(hof)
    def wrapper(*args, **kwargs):
        args = [convert(a) if callable(a) and not isinstance(a, type) else a for a in args]
        kwargs = {k: convert(v) if callable(v) and not isinstance(v, type) else v
                  for k, v in kwargs.items()}
        return hof(*args, **kwargs)

    return wrapper


_HOF_WRAPPERS: dict = {}


def cv(f):
    """The callee ``f`` of a call in converted code, converted (see ``convert``)."""
    if isinstance(f, (types.BuiltinFunctionType, type)):
        return f
    if isinstance(f, types.FunctionType):
        if f.__code__ in _CONVERTED_CODES:
            return f
        if f.__code__.co_filename.startswith(_PKG) and not getattr(f, "__dg_convert__", False):
            for h in _higher_order():
                if f is h:
                    w = _HOF_WRAPPERS.get(id(h))
                    if w is None:
                        w = _HOF_WRAPPERS[id(h)] = _convert_args(h)
                    return w
            return convert(f) if _is_transform_wrapper(f) else f
    return convert(f)


def to_source(fn):
    """The converted source of ``fn`` (a string), or None when it is not converted."""
    f = convert(fn)
    f = getattr(f, "__func__", f)
    for _ in range(8):  # dg.grad(f) and other wrappers: the source of what they wrap
        code = getattr(f, "__code__", None)
        if code is not None and code in _SOURCES:
            return _SOURCES[code]
        f = getattr(f, "__wrapped__", None)
        if f is None:
            return None
    return None


_RUNTIME = types.SimpleNamespace(
    cv=cv,
    **{name: getattr(R, name) for name in (
        "if_stmt if_exp and_ or_ not_ not_any chain while_stmt for_stmt range_ ld mut "
        "undefined_return ret iadd isub imul itruediv ifloordiv imod ipow imatmul iand ior ixor "
        "ilshift irshift").split()},
)


def trace(fn, *example_args):
    """Trace ``fn`` on arguments of the shapes and dtypes of ``example_args`` into a Graph,
    its Python ``if``/``while``/``for`` on tensors converted first (``convert``).

    Tensor arguments become graph inputs (in order); other arguments are static.

    >>> g = dg.trace(lambda x: (x * 2).sum(), dg.ones(3))
    >>> print(g)
    { lambda a:f32[3] .
      let b:f32[3] = mul a 2
          c:f32[] = reduce_sum[axes=(0,) keepdims=False] b
      in (c) }
    """
    if _context.get().trace is not None:
        raise TracerError("dg.trace cannot be called while tracing; call the function directly")
    fn = convert(fn)  # Python if/while/for on tensors -> cond/while
    graph, _ = trace_function(fn, example_args)
    graph.source = to_source(fn)
    return graph
