"""``dg.save`` / ``dg.load``: state dicts (and any nest of dicts, lists and tuples of
tensors, arrays, numbers, strings, None) as a numpy ``.npz`` archive.

Each tensor or array is one ``.npy`` entry named by its path (``"0.weight"``,
``"state.3.exp_avg"``), so ``np.load`` reads the file too; one more entry,
``__dualgraph__``, holds the structure as JSON.  Loading never unpickles.

    dg.save(model.state_dict(), "model.npz")
    model.load_state_dict(dg.load("model.npz"))
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np

from .eager.tensor import Tensor

_META = "__dualgraph__"
_FORMAT = 1


def _encode(obj, path, arrays):
    def leaf(kind, a, extra=None):
        name = ".".join(path) or "value"
        base, k = name, 1
        while name in arrays or name == _META:
            name, k = f"{base}#{k}", k + 1
        arrays[name] = a
        out = {"t": kind, "k": name}
        if extra:
            out.update(extra)
        return out

    if isinstance(obj, Tensor):
        if obj._value.__class__ is not np.ndarray:
            raise TypeError("dg.save: cannot save a traced tensor")
        return leaf("tensor", obj._value, {"rg": bool(obj.requires_grad)})
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("dg.save: object arrays are not supported")
        return leaf("array", obj)
    if isinstance(obj, np.generic):
        return leaf("npscalar", np.asarray(obj))
    if obj is None:
        return {"t": "none"}
    if isinstance(obj, bool):
        return {"t": "bool", "v": obj}
    if isinstance(obj, int):
        return {"t": "int", "v": str(obj)}
    if isinstance(obj, float):
        return {"t": "float", "v": repr(obj)}
    if isinstance(obj, str):
        return {"t": "str", "v": obj}
    if isinstance(obj, dict):
        items = []
        for key, v in obj.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"dg.save: dict keys must be str or int, got {key!r}")
            items.append([key if isinstance(key, str) else {"int": key}, _encode(v, path + [str(key)], arrays)])
        return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"t": "list" if isinstance(obj, list) else "tuple",
                "items": [_encode(v, path + [str(i)], arrays) for i, v in enumerate(obj)]}
    if hasattr(obj, "detach") and hasattr(obj, "cpu") and hasattr(obj, "numpy"):  # a torch tensor
        return leaf("tensor", obj.detach().cpu().numpy(), {"rg": False})
    raise TypeError(f"dg.save: cannot save an object of type {type(obj).__name__} "
                    "(tensors, arrays, numbers, strings, None, dicts, lists and tuples are supported)")


def _decode(node, data):
    t = node["t"]
    if t == "tensor":
        out = Tensor(np.array(data[node["k"]]))
        if node.get("rg"):
            out.requires_grad_(True)
        return out
    if t == "array":
        return np.array(data[node["k"]])
    if t == "npscalar":
        return data[node["k"]][()]
    if t == "none":
        return None
    if t == "bool":
        return bool(node["v"])
    if t == "int":
        return int(node["v"])
    if t == "float":
        return float(node["v"])
    if t == "str":
        return node["v"]
    if t in ("dict", "odict"):
        out = OrderedDict() if t == "odict" else {}
        for key, v in node["items"]:
            out[key["int"] if isinstance(key, dict) else key] = _decode(v, data)
        return out
    if t in ("list", "tuple"):
        items = [_decode(v, data) for v in node["items"]]
        return items if t == "list" else tuple(items)
    raise ValueError(f"dg.load: unknown entry type {t!r} (file written by a newer dualgraph?)")


def save(obj, f) -> None:
    """Write ``obj`` (e.g. a ``state_dict()``) to ``f`` (a path, written exactly under that
    name, or a binary file object) as an ``.npz`` archive."""
    arrays: dict = {}
    tree = _encode(obj, [], arrays)
    meta = json.dumps({"format": _FORMAT, "tree": tree})
    arrays[_META] = np.array(meta)
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        np.savez(f, **arrays)


def load(f, map_location=None, weights_only=True):
    """Read what ``dg.save`` wrote (tensors come back as Tensors).  A plain ``.npz`` (e.g.
    from ``np.savez``) loads as a dict of Tensors by entry name."""
    if map_location not in (None, "cpu"):
        raise RuntimeError(f"dg.load: dualgraph runs on the CPU only, got map_location={map_location!r}")
    with np.load(f, allow_pickle=False) as data:
        if _META not in data.files:
            return {k: Tensor(np.array(data[k])) for k in data.files}
        meta = json.loads(str(data[_META][()]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"dg.load: unsupported format {meta.get('format')!r}")
        return _decode(meta["tree"], data)
