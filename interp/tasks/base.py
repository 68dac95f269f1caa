"""A task is data + prompt builder + scorer (inspect_ai style), registered by name."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..prompts import Part
from ..registry import Registry


@dataclass
class Item:
    """One benchmark item. `input` is the task text shown to the model; `target` is the gold answer/tests."""

    id: str
    input: str
    target: Any
    metadata: dict = field(default_factory=dict)


@dataclass
class Score:
    """The verdict on one output: `success` drives SustainScore; `value` is a graded score (EM, F1, pass)."""

    success: bool
    value: float = 0.0
    prediction: Any = None
    detail: dict = field(default_factory=dict)


class Task:
    """Base class: subclasses set `name`, `domain` and implement `load_items`, `parts`, `score`.

    `parts(item)` returns prompt parts; the part named "task" is the task text (constraints are
    inserted relative to it). `lenient_score` accepts right solutions in the wrong form and is what
    tells an output-specification error from a reasoning error.
    """

    name: str = ""
    domain: str = ""
    max_new_tokens: int = 256
    description: str = ""

    def load_items(self) -> list[Item]:
        raise NotImplementedError

    def items(self, n: int | None = None, offset: int = 0) -> list[Item]:
        all_items = self.load_items()
        return all_items[offset: None if n is None else offset + n]

    def parts(self, item: Item) -> list[Part]:
        return [Part("task", item.input)]

    def score(self, item: Item, output: str) -> Score:
        raise NotImplementedError

    def lenient_score(self, item: Item, output: str) -> Score:
        return self.score(item, output)

    def score_many(self, items: list[Item], outputs: list[str]) -> list[Score]:
        """Score a batch; tasks that execute code override this to run in parallel."""
        return [self.score(i, o) for i, o in zip(items, outputs)]

    def lenient_score_many(self, items: list[Item], outputs: list[str]) -> list[Score]:
        return [self.lenient_score(i, o) for i, o in zip(items, outputs)]


TASKS: Registry[Callable[..., Task]] = Registry(
    "task", group="interp.tasks", hint="see `interp tasks`; load your own module with `--import MODULE`")


def register_task(name: str, *, replace: bool = False):
    """Class/factory decorator: `@register_task("gsm8k")` makes `get_task("gsm8k")` build it.

    A name already taken by another class is an error unless `replace=True`.
    """

    def deco(factory):
        TASKS.register(name, factory, replace=replace)
        if isinstance(factory, type) and not getattr(factory, "name", ""):
            factory.name = name
        return factory

    return deco


def get_task(name: str, ref: str | None = None, **kwargs) -> Task:
    """Build the task registered as `name` (or given as `module:qualname` of a registered task).

    `ref` is the `module:qualname` a run recorded for its task: when `name` is not registered in this
    process, its module is imported (registering the task) before the lookup, so a task defined in
    the researcher's own module is found again by `interp ablate` / a resumed run.
    """
    if ref and name not in TASKS:
        from ..registry import resolve_ref

        resolve_ref(ref)
    return TASKS.lookup(name)(**kwargs)


def task_ref(name: str) -> str:
    """`module:qualname` of the task registered as `name`: what a run records so other processes find it."""
    return TASKS.ref(name)


def select_ids(items: list[Item], ids: list[str] | None) -> list[Item]:
    """The items whose id is in `ids` (all when None), in their order; an unknown id is an error."""
    if ids is None:
        return items
    from ..errors import InterpError

    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InterpError(f"ids must be a list of item id strings, got {ids!r}")
    known = {it.id for it in items}
    missing = [i for i in ids if i not in known]
    if missing:
        raise InterpError(f"unknown item ids {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                          f"(ids look like {items[0].id!r})")
    want = set(ids)
    return [it for it in items if it.id in want]
