"""Progress bars for long work (an import, a simulated run, a check, an issue's emails), on a terminal only.

Transient, drawn on the invocation's console, and disabled when that console is not a terminal:
piped output and logs stay free of escape codes. Layers below the CLI never import rich: they are
handed an :data:`Advance` (or a :data:`Start`, for work in several pieces) and call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from drip.runtime import Runtime

Advance = Callable[[int, int], None]  # (units done since the last call, total)
Start = Callable[[str], Advance]  # a bar for one more piece of work, by description


@contextmanager
def progress_bars(runtime: Runtime) -> Iterator[Start]:
    """One display for several bars; the callable yielded adds one, which goes away once full."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = runtime.console
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )

    def start(description: str) -> Advance:
        task = bar.add_task(description, total=None)
        done_so_far = 0

        def advance(done: int, total: int) -> None:
            nonlocal done_so_far
            done_so_far += done
            if done_so_far >= total > 0 and len(bar.task_ids) > 1:
                bar.remove_task(task)  # finished: make room for the next piece
            elif task in bar.task_ids:
                bar.update(task, advance=done, total=total)

        return advance

    with bar:
        yield start


@contextmanager
def progress(runtime: Runtime, description: str) -> Iterator[Advance]:
    """A bar; the callable yielded moves it on and says the total, once it is known."""
    with progress_bars(runtime) as start:
        yield start(description)
