"""Tasks: one module per task, each registered with `@register_task` in `base.TASKS`."""
from .base import TASKS, Item, Score, Task, get_task, register_task

__all__ = ["TASKS", "Item", "Score", "Task", "get_task", "register_task"]
