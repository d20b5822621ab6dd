"""Handing the course out: each student's home gets the notebooks, and keeps what they changed.

On a JupyterHub, every student's server starts with this, before the server itself:

    python -m cqrs_demo.course.handout /srv/course/student course -- jupyterhub-singleuser ...

It copies the course (the student's edition, `make student`) into `~/course`, skipping every
file the student already has, as `cp -rn` does: a notebook the student has worked in is never
overwritten, a notebook added to the course since their last start arrives. Then it becomes the
command after `--` (exec), so the spawner's signals and exit status are the server's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

SKIPPED = {".ipynb_checkpoints", "__pycache__", ".run"}


def hand_out(course: Path, target: Path) -> list[Path]:
    """Copy every file of `course` that `target` lacks; returns the files copied (in `target`)."""
    course, target = Path(course), Path(target)
    if not course.is_dir():
        raise FileNotFoundError(f"no course to hand out at {course}")
    copied = []
    for source in sorted(course.rglob("*")):
        relative = source.relative_to(course)
        if SKIPPED & set(relative.parts) or not source.is_file():
            continue
        destination = target / relative
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        copied.append(destination)
    return copied


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    then = []
    if "--" in argv:
        at = argv.index("--")
        argv, then = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(
        prog="python -m cqrs_demo.course.handout",
        description="Copy the course into a student's home, keeping their files; then run the command after --.")
    parser.add_argument("course", type=Path, help="the course to hand out (the student's edition)")
    parser.add_argument("target", type=Path, help="where it goes, relative to the working directory (the home)")
    arguments = parser.parse_args(argv)
    try:
        copied = hand_out(arguments.course, arguments.target)
        print(f"handout: {len(copied)} new file(s) from {arguments.course} in {arguments.target}", file=sys.stderr)
    except OSError as exc:
        # A server without the course is still a server: the student can pull it by hand.
        print(f"handout: the course was not copied: {exc}", file=sys.stderr)
    if then:
        os.execvp(then[0], then)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
