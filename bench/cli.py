"""Start-up of the command line: how long `drip --help`, `drip check` and `drip preview` take.

`drip preview` is timed three ways: the timeline, `--out` (every email written to files) and the
preview app's factory (`drip preview --serve` up to the point where it starts listening).

Each command runs in a fresh interpreter several times; the script prints the
median wall time of each against `python -c pass` measured in the same run, so
the ratio says what drip adds to a bare interpreter on this machine, whatever its load.

    python bench/cli.py [--runs 9] [--site PATH]

Without --site it works on a copy of the example site (the repository root) in a
temporary folder, so nothing is written in the checkout.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SITE_PARTS = ("drip.yaml", "content", "schedules", "email_templates")
COMMANDS: tuple[tuple[str, list[str]], ...] = (
    ("python -c pass", ["-c", "pass"]),
    ("drip --help", ["-m", "drip", "--help"]),
    ("drip check", ["-m", "drip", "check"]),
    ("drip preview le-role-du-cto", ["-m", "drip", "preview", "le-role-du-cto"]),
    ("drip preview … --out DIR", ["-m", "drip", "preview", "le-role-du-cto", "--out", "preview-out"]),
    (
        "preview app factory",
        [
            "-c",
            "from drip.config import load_site; from drip.preview.server import create_app; "
            "create_app(load_site('.'))",
        ],
    ),
)


def copy_site(target: Path) -> Path:
    """The example site's source files (not its database or outbox) in ``target``."""
    target.mkdir(parents=True)
    for part in SITE_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, target / part)
        elif source.is_file():
            shutil.copy2(source, target / part)
    return target


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_times(args: list[str], site: Path, runs: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per run of ``python args`` in ``site``; one warm-up run first (disk cache,
    .pyc files). CPU time (user + system of the child) moves less than wall time on a loaded machine."""
    # As an installed drip runs: from bytecode, which the warm-up run writes if it is missing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"COLUMNS": "120"}
    times: list[tuple[float, float]] = []
    for attempt in range(runs + 1):
        start, cpu = time.perf_counter(), _children_cpu()
        subprocess.run([sys.executable, *args], cwd=site, env=env, check=True, capture_output=True)
        if attempt:
            times.append((time.perf_counter() - start, _children_cpu() - cpu))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="repetitions of each command (default 9)")
    parser.add_argument(
        "--site", type=Path, default=None, help="a site folder (default: a copy of the example)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drip-bench-cli-") as tmp:
        site = options.site or copy_site(Path(tmp) / "site")
        runs = {label: wall_times(args, site, options.runs) for label, args in COMMANDS}
    medians = {
        label: (statistics.median(w for w, _ in found), statistics.median(c for _, c in found))
        for label, found in runs.items()
    }
    wall_base, cpu_base = medians["python -c pass"]
    print(f"median of {options.runs} runs each, {sys.executable}, load {os.getloadavg()[0]:.2f}")
    for label, (wall, cpu) in medians.items():
        print(
            f"  {label:<30} wall {wall * 1000:6.0f} ms {wall / wall_base:5.1f}x"
            f"   cpu {cpu * 1000:6.0f} ms {cpu / cpu_base:5.1f}x python -c pass"
        )


if __name__ == "__main__":
    main()
