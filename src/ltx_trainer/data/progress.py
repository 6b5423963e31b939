"""The one shape of a progress bar in the data tools and the verbs: label, bar, ``n/N``, elapsed, remaining."""

from __future__ import annotations

from typing import Any


def progress_columns(
    label: str | None = None, unit: str | None = None, elapsed: bool = True, remaining: bool = True
) -> tuple[Any, ...]:
    """rich columns: ``label`` (None: the task's description), the bar, ``n/N`` (then ``unit``), times.

    Imports rich when called, so the verbs that show a bar keep ``--help`` light.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns: list[Any] = [TextColumn(label or "[progress.description]{task.description}"), BarColumn()]
    columns.append(MofNCompleteColumn())
    if unit:
        columns.append(TextColumn(unit))
    if elapsed:
        columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return tuple(columns)
