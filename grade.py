#!/usr/bin/env python3
"""The instructor's grading workflow, one command per step (nbgrader underneath).

    python grade.py release [ASSIGNMENT ...]        solutions/ -> notebooks/  (nbgrader generate_assignment)
    python grade.py collect INBOX [ASSIGNMENT ...]  INBOX/<student>/**/*.ipynb -> submitted/<student>/<assignment>/
    python grade.py autograde [ASSIGNMENT ...]      run and grade every collected submission, then report
    python grade.py feedback [ASSIGNMENT ...]       feedback/<student>/<assignment>/<notebook>.html
    python grade.py export [--to grades.csv]        one row per student and assignment
    python grade.py all INBOX                       collect, autograde, feedback and export in one go

Without ASSIGNMENT a step covers every assignment of the course (every folder of solutions/).
`--course DIR` works on another nbgrader course directory (default: this repository); `--jobs N`
autogrades N assignments at once (one nbgrader process each, all writing the one gradebook).
Needs nothing but the course environment (the one `python3 course.py ...` made).

Autograding goes on past a submission it can't grade (nbgrader logs it and takes the next
student); at the end this script lists those, and the notebooks whose feedback says a kernel
died or tampering was suspected, so nothing is lost in nbgrader's log. Exit status 1 when a
submission could not be graded. Re-running `autograde` grades only what is new or was
re-collected; `--force` regrades everything.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Errors that nbgrader_config.py writes into a graded cell when the grade needs a person's look.
REVIEW_ERRORS = {"TamperingSuspected": "tampering suspected", "NotRun": "kernel died or hung",
                 "DeadKernelError": "kernel died", "CellTimeoutError": "a cell timed out"}


def assignments(course: Path) -> list[str]:
    return sorted(p.name for p in (course / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))


def notebook_names(course: Path, assignment: str) -> list[str]:
    return sorted(p.name for p in (course / "solutions" / assignment).glob("*.ipynb"))


def nbgrader(course: Path, *args: str, check: bool = True) -> int:
    """Run `nbgrader ARGS` in the course directory with this interpreter; its log goes to our output."""
    bindir = str(Path(sys.executable).parent)  # nbgrader calls `alembic` from the environment
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout, end="", flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed ({proc.returncode})")
    return proc.returncode


def release(course: Path, names: list[str]) -> None:
    for assignment in names:
        nbgrader(course, "generate_assignment", assignment, "--force")


def collect(course: Path, inbox: Path, names: list[str]) -> list[tuple[str, str, str]]:
    """Copy each student's notebooks from INBOX/<student>/ (any depth) into nbgrader's
    submitted/<student>/<assignment>/<notebook>.ipynb, with the file's time as submission time.

    A notebook is recognised by its name: exactly `<notebook>.ipynb`, or failing that any
    `<NN>_*.ipynb` of the assignment's number (`01_efficiency-Copy1.ipynb`, `01_efficiency (2).ipynb`);
    of several candidates the newest is taken. Returns (student, assignment, source file) rows.
    """
    if not inbox.is_dir():
        raise SystemExit(f"inbox {inbox} is not a directory (expected INBOX/<student>/<notebook>.ipynb)")
    taken = []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir()):
        student = re.sub(r"[^\w.-]", "_", folder.name)
        files = [p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
        for assignment in names:
            for name in notebook_names(course, assignment):
                prefix = assignment.split("_")[0] + "_"
                exact = [p for p in files if p.name == name]
                candidates = exact or [p for p in files if p.name.startswith(prefix)]
                if not candidates:
                    continue
                src = max(candidates, key=lambda p: p.stat().st_mtime)
                dest = course / "submitted" / student / assignment
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
                when = datetime.fromtimestamp(src.stat().st_mtime, tz=timezone.utc)
                (dest / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
                taken.append((student, assignment, str(src)))
    print(f"[grade] collected {len(taken)} notebooks of {len({s for s, _, _ in taken})} students from {inbox}")
    return taken


@dataclass
class Report:
    graded: int = 0
    failed: list[str] = field(default_factory=list)  # 'student/assignment/notebook': nbgrader could not grade it
    review: list[str] = field(default_factory=list)  # 'student/assignment/notebook: why'


TIMES = ".autograde-seconds.json"  # in the course: each assignment's longest autograde time (git-ignored)


def recorded_times(course: Path) -> dict[str, float]:
    """The longest autograde seen of each assignment of `course` (empty before the first)."""
    try:
        return {a: float(t) for a, t in json.loads((course / TIMES).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def heaviest_first(course: Path, names: list[str]) -> list[str]:
    """`names` in the order that finishes soonest with several jobs: the longest first (by the
    recorded times; before there are any, the later notebooks first, which run searches)."""
    seconds = recorded_times(course)
    return sorted(names, key=lambda a: (seconds.get(a, 0.0), a), reverse=True)


def autograde(course: Path, names: list[str], force: bool = False, jobs: int = 1) -> Report:
    """`nbgrader autograde` per assignment (all students in one run), the longest first, then
    check what came out."""
    args = ["--force"] if force else []

    def one(assignment: str) -> float:
        start = time.perf_counter()
        nbgrader(course, "autograde", assignment, *args, check=False)
        return time.perf_counter() - start

    order = heaviest_first(course, names)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        seconds = dict(zip(order, pool.map(one, order)))
    # the longest time seen: a later run that grades only a few new submissions must not reorder
    recorded = recorded_times(course)
    longest = {a: max(t, recorded.get(a, 0.0)) for a, t in seconds.items()}
    (course / TIMES).write_text(json.dumps({**recorded, **longest}, indent=1, sort_keys=True))
    return report(course, names)


def report(course: Path, names: list[str]) -> Report:
    """Every submitted notebook: graded, failed (no autograded notebook) or graded but to review."""
    out = Report()
    submitted = course / "submitted"
    for student in sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []:
        for assignment in names:
            for name in notebook_names(course, assignment):
                if not (submitted / student / assignment / name).exists():
                    continue
                key = f"{student}/{assignment}/{name}"
                graded = course / "autograded" / student / assignment / name
                if not graded.exists():
                    out.failed.append(key)
                    continue
                out.graded += 1
                why = sorted({REVIEW_ERRORS[o["ename"]] for c in json.loads(graded.read_text())["cells"]
                              for o in c.get("outputs", []) if o.get("ename") in REVIEW_ERRORS})
                if why:
                    out.review.append(f"{key}: {', '.join(why)}")
    print(f"[grade] {out.graded} notebooks graded, {len(out.failed)} could not be graded")
    for key in out.failed:
        print(f"[grade] NOT GRADED (see nbgrader's log above; the gradebook has 0 for it): {key}")
    for line in out.review:
        print(f"[grade] review by hand: {line}")
    return out


def feedback(course: Path, names: list[str]) -> None:
    for assignment in names:
        nbgrader(course, "generate_feedback", assignment, "--force", check=False)


def export(course: Path, to: str) -> None:
    nbgrader(course, "export", "--to", to)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grade.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", type=Path, default=ROOT, help="nbgrader course directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="step", required=True)
    for step in ("release", "autograde", "feedback"):
        p = sub.add_parser(step)
        p.add_argument("assignments", nargs="*")
    p = sub.add_parser("collect")
    p.add_argument("inbox", type=Path)
    p.add_argument("assignments", nargs="*")
    p = sub.add_parser("export")
    p.add_argument("--to", default="grades.csv")
    p = sub.add_parser("all")
    p.add_argument("inbox", type=Path)
    p.add_argument("--to", default="grades.csv")
    for p in (sub.choices["autograde"], sub.choices["all"]):
        p.add_argument("--force", action="store_true", help="regrade submissions graded before")
        p.add_argument("--jobs", type=int, default=1, help="assignments autograded at once")
    args = parser.parse_args(argv)

    course = args.course.resolve()
    known = assignments(course)
    names = getattr(args, "assignments", None) or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown assignment(s) {unknown}; the course has {known}")

    if args.step == "release":
        release(course, names)
    elif args.step == "collect":
        collect(course, args.inbox, names)
    elif args.step == "autograde":
        return 1 if autograde(course, names, args.force, args.jobs).failed else 0
    elif args.step == "feedback":
        feedback(course, names)
    elif args.step == "export":
        export(course, args.to)
    else:  # all
        collect(course, args.inbox, names)
        result = autograde(course, names, args.force, args.jobs)
        feedback(course, names)
        export(course, args.to)
        return 1 if result.failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
