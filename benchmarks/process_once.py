"""`make bench-process`: `imgflow process` of one small image, all told (the runtime's start, the image,
the stop), in fresh processes: the wall time and the CPU of the command and its functions' loaders
(their containers' own work is not counted: the loaders do not wait for them).

CPU seconds are the primary figure (the machine is shared); medians of --repeat runs, alternating with
another checkout when --baseline names one (`git archive HEAD~3 | tar -x -C /tmp/b`)."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests" / "fixtures" / "images" / "soak" / "goldfish_alpha_480.png"


def run_once(tree: Path, image: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds, and the seconds `imgflow process` says it took to be ready."""
    environment = dict(os.environ)
    if tree != ROOT:
        # The other checkout's runtime, layer and client, with this checkout's virtualenv.
        folders = ("infra", "layers/imgflow", "clients/python")
        environment["PYTHONPATH"] = os.pathsep.join(str(tree / folder) for folder in folders)
    command = [
        str(Path(sys.executable).parent / "imgflow"),
        "process",
        str(image),
        "--template",
        str(tree / "template.yaml"),
    ]
    with tempfile.TemporaryDirectory(prefix="process-once-") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([*command, "--out", out], env=environment, cwd=tree, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"imgflow process failed in {tree}:\n{done.stderr[-3000:]}")
    ready = next(line for line in done.stderr.splitlines() if "ready after" in line)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, float(ready.split("ready after ")[1].split(" s")[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--baseline", type=Path, metavar="TREE", help="another checkout, run alternately")
    args = parser.parse_args(argv)
    trees = {"this tree": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    loads = []
    for _ in range(args.repeat):
        for name, tree in trees.items():
            runs[name].append(run_once(tree, args.image.resolve()))
            loads.append(os.getloadavg()[0])
    load = f"load average {min(loads):.0f}-{max(loads):.0f}"
    print(f"imgflow process {args.image.name}: medians of {args.repeat}, alternating ({load})")
    print(f"  {'tree':<10} {'CPU s':>6} {'wall s':>7} {'ready s':>8}")
    for name, rows in runs.items():
        wall, cpu, ready = (statistics.median(row[index] for row in rows) for index in range(3))
        print(f"  {name:<10} {cpu:>6.2f} {wall:>7.1f} {ready:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
