"""Tasks: preprocessing, postprocessing and metrics per model kind."""

from cpuai.tasks.base import Score, Task

__all__ = ["Score", "Task"]
