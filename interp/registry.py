"""One registry pattern for everything found by name: tasks, constraint types and intervention ops.

A `Registry` maps names to objects. Registering a name twice is an error unless `replace=True`, so a
plugin cannot silently shadow a built-in; re-running the cell or reloading the module that defined the
same `module:qualname` replaces it quietly (that is a redefinition, not a clash). Installed packages
register themselves through an entry-point group (e.g. `interp.tasks`), loaded the first time a name
is looked up or listed. Every object's `module:qualname` is its `ref`, so another process can import
it again (`resolve_ref`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import InterpError

T = TypeVar("T")


def ref_of(obj: Any) -> str:
    """`module:qualname` of a class or function (of the class for an instance)."""
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{target.__module__}:{target.__qualname__}"


def resolve_ref(ref: str) -> Any:
    """Import `module:qualname` and return the object; a clear InterpError when it cannot be found."""
    module, sep, qualname = ref.partition(":")
    if not sep or not module or not qualname:
        raise InterpError(f"expected a reference like 'package.module:Name', got {ref!r}")
    if module == "__main__":
        raise InterpError(f"{ref} was defined in a notebook or script (__main__), which another process cannot "
                          "import; move it into a module and pass `--import that.module`")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise InterpError(f"cannot import {module!r} for {ref}: {e}") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise InterpError(f"module {module!r} has no {qualname!r} (from reference {ref})")
        obj = getattr(obj, part)
    return obj


class UnknownName(InterpError, KeyError):
    """A name no registry entry has: an InterpError for the CLI, a KeyError for `Mapping.get` and `in`."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> object, read like a dict; `register` refuses a taken name unless `replace=True`.

    `noun` names the things in error messages ("task", "constraint type"); `group` is the entry-point
    group whose installed plugins are loaded on first lookup; `hint` ends the unknown-name error.
    """

    def __init__(self, noun: str, group: str | None = None, hint: str = ""):
        self.noun = noun
        self.group = group
        self.hint = hint
        self._items: dict[str, T] = {}
        self._refs: dict[str, str] = {}
        self._plugins_loaded = group is None

    def register(self, name: str, obj: T, *, replace: bool = False, ref: str | None = None) -> T:
        """Add `obj` under `name`; `ref` (default `module:qualname` of obj) tells a redefinition from a clash."""
        if not name or not isinstance(name, str):
            raise InterpError(f"a {self.noun} needs a non-empty string name, got {name!r}")
        ref = ref or ref_of(obj)
        if name in self._items and not replace and self._refs[name] != ref:
            raise InterpError(f"{self.noun} {name!r} is already registered by {self._refs[name]}; "
                              f"pass replace=True to replace it with {ref}")
        self._items[name] = obj
        self._refs[name] = ref
        return obj

    def decorator(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """`@registry.decorator("name")`: register the decorated object and return it unchanged."""

        def deco(obj: T) -> T:
            return self.register(name, obj, replace=replace)

        return deco

    def instance_decorator(self, cls=None, *, replace: bool = False, check: Callable[[Any], str | None] | None = None):
        """`@register_x` / `@register_x(replace=True)` for classes: registers one instance of the decorated class
        under its `name` attribute (`check(instance)` may return a complaint) and returns the class unchanged."""
        return self._class_registrar(cls, replace, check, instantiate=True)

    def class_decorator(self, cls=None, *, replace: bool = False, check: Callable[[Any], str | None] | None = None):
        """`@register_x` / `@register_x(replace=True)`: registers the decorated class itself under its `name`
        attribute (for value classes such as probes, built by the caller); returns the class unchanged."""
        return self._class_registrar(cls, replace, check, instantiate=False)

    def _class_registrar(self, cls, replace: bool, check: Callable[[Any], str | None] | None, instantiate: bool):
        def deco(c):
            obj = c() if instantiate else c
            problem = "needs a `name`" if not getattr(obj, "name", None) else (check(obj) if check else None)
            if problem:
                raise InterpError(f"{c.__name__} {problem}")
            self.register(obj.name, obj, replace=replace, ref=ref_of(c))
            return c

        return deco if cls is None else deco(cls)

    def unregister(self, name: str) -> None:
        """Remove a name (no error when absent)."""
        self._items.pop(name, None)
        self._refs.pop(name, None)

    def ref(self, name: str) -> str:
        """`module:qualname` of the object registered under `name` (a ref given as the name is returned as is)."""
        self.lookup(name)
        return self._refs.get(name, name)

    def lookup(self, name: str) -> T:
        """The object under `name` (also `registry[name]`); a `module:qualname` reference is imported first
        (its module registers it). An unknown name raises `UnknownName` listing the known ones."""
        if name not in self._items and ":" in name:
            resolve_ref(name)  # importing the module registers what it defines
            known = [n for n, r in self._refs.items() if r == name]
            if not known:
                raise InterpError(f"{name} exists but is not a registered {self.noun}; register it in its module")
            return self._items[known[0]]
        if name not in self._items:
            self.load_plugins()
        if name not in self._items:
            raise UnknownName(f"unknown {self.noun} {name!r}; known: {', '.join(sorted(self._items))}"
                              + (f" ({self.hint})" if self.hint else ""))
        return self._items[name]

    def load_plugins(self) -> None:
        """Load the entry points of `group` once: each names a module (registering on import) or an object."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        assert self.group is not None
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001 - a broken plugin is named, not a traceback
                raise InterpError(f"plugin {ep.name!r} ({ep.value}) in entry-point group {self.group} failed to "
                                  f"load: {type(e).__name__}: {e}") from None
            if ep.name not in self._items and not isinstance(obj, type(importlib)):
                self.register(ep.name, obj)

    def __getitem__(self, name: str) -> T:
        return self.lookup(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in self._items:
            self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(list(self._items))

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.noun!r}, {sorted(self._items)})"
