"""Minimal pytrees: nested tuples, lists and dicts of leaves, flattened and rebuilt.

Control-flow carries, branch operands and function results are pytrees; graphs take and
return flat lists of arrays plus a ``TreeDef`` to rebuild the structure.
"""
from __future__ import annotations


class TreeDef:
    __slots__ = ("kind", "children", "aux")

    def __init__(self, kind, children=(), aux=None):
        self.kind = kind  # "leaf", "tuple", "list", "dict", "none"
        self.children = tuple(children)
        self.aux = aux  # dict keys

    @property
    def num_leaves(self):
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __eq__(self, other):
        return (
            isinstance(other, TreeDef)
            and self.kind == other.kind
            and self.aux == other.aux
            and self.children == other.children
        )

    def __hash__(self):
        return hash((self.kind, self.aux, self.children))

    def __repr__(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind == "tuple":
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        if self.kind == "list":
            return f"[{inner}]"
        return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.children)) + "}"


LEAF = TreeDef("leaf")


def tree_flatten(x):
    leaves = []

    def rec(x):
        if isinstance(x, tuple) and not hasattr(x, "_fields"):
            return TreeDef("tuple", [rec(c) for c in x])
        if isinstance(x, list):
            return TreeDef("list", [rec(c) for c in x])
        if isinstance(x, dict):
            keys = tuple(sorted(x))
            return TreeDef("dict", [rec(x[k]) for k in keys], keys)
        if x is None:
            return TreeDef("none")
        leaves.append(x)
        return LEAF

    return leaves, rec(x)


def tree_unflatten(tree: TreeDef, leaves):
    it = iter(leaves)

    def rec(t):
        if t.kind == "leaf":
            return next(it)
        if t.kind == "none":
            return None
        kids = [rec(c) for c in t.children]
        if t.kind == "tuple":
            return tuple(kids)
        if t.kind == "list":
            return kids
        return dict(zip(t.aux, kids))

    return rec(tree)
