"""Progress bars for long work (an import, a simulated run), on a terminal only.

Transient, drawn on the invocation's console, and disabled when that console is not a terminal:
piped output and logs stay free of escape codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from drip.runtime import Runtime

Advance = Callable[[int, int], None]  # (units done since the last call, total)


@contextmanager
def progress(runtime: Runtime, description: str) -> Iterator[Advance]:
    """A bar; the callable yielded moves it on and says the total, once it is known."""
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
    with bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, advance=done, total=total)

        yield advance
