"""Tasks: one module per task, each registered with `@register_task` in the `base.TASKS` registry."""
from __future__ import annotations

from . import gsm8k, hotpotqa, humaneval, smoke  # noqa: F401  (importing registers the tasks)
from . import ifeval, mathif  # noqa: F401  (benchmarks: IFEval, MathIF)
from .base import TASKS, Item, Score, Task, get_task, register_task, task_ref
from ..errors import InterpError


def list_tasks(count: bool = True) -> list[dict]:
    """Registered tasks as dicts: name, domain, description, max_new_tokens and (if `count`) n items.

    `n` is None with an `error` message when the task's data cannot be loaded here.
    """
    rows = []
    for name in sorted(TASKS):
        task = TASKS[name]()
        row = {"name": name, "domain": task.domain, "description": task.description,
               "max_new_tokens": task.max_new_tokens}
        if count:
            try:
                row["n"] = len(task.load_items())
            except InterpError as e:
                row["n"], row["error"] = None, str(e)
        rows.append(row)
    return rows


__all__ = ["TASKS", "Item", "Score", "Task", "get_task", "list_tasks", "register_task", "task_ref"]
