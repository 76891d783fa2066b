"""Run real nbgrader on the course in a scratch course directory.

The course tests (and the crafted-submission tests) build a temporary nbgrader course from the
repository's `nbgrader_config.py` and `solutions/`, release it with `nbgrader generate_assignment`,
put student notebooks into `submitted/<student>/<assignment>/`, run `nbgrader autograde` and read
the scores back from the real gradebook.
"""

from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, TypeVar

import nbformat

try:
    import fcntl
except ImportError:  # Windows: no sharing between workers, each computes its own
    fcntl = None

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "notebooks"


def assignments() -> list[str]:
    """Every assignment of the course: one folder in `solutions/` each, present and future."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and not p.name.startswith("."))


def notebook_names(assignment: str) -> list[str]:
    return sorted(p.name for p in (SOLUTIONS / assignment).glob("*.ipynb"))


def nbgrader(course: Path, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` in `course`; raise with nbgrader's log when it fails (unless not `check`:
    a batch with a submission nbgrader could not grade exits 1 after grading all the others)."""
    bindir = str(Path(sys.executable).parent)  # nbgrader calls `alembic` from the environment
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    env.pop("JUPYTER_CONFIG_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_course(tmp: Path, assignment: str, *more: str) -> Path:
    """A scratch course directory with the assignment(s) released (gradebook in `tmp`)."""
    course = tmp / "course"
    course.mkdir(parents=True, exist_ok=False)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for name in (assignment, *more):
        shutil.copytree(SOLUTIONS / name, course / "solutions" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        nbgrader(course, "generate_assignment", name, "--force")
    return course


def release_notebook(course: Path, assignment: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(course / "notebooks" / assignment / name, as_version=4)


def source_notebook(assignment: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(SOLUTIONS / assignment / name, as_version=4)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_solution(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def solved(course: Path, assignment: str, name: str, only: set[str] | None = None) -> nbformat.NotebookNode:
    """The released notebook as a student who solved it hands it in: each answer cell (or only
    those named in `only`) gets the instructor's solution."""
    nb = copy.deepcopy(release_notebook(course, assignment, name))
    answers = {grade_id(c): c.source for c in source_notebook(assignment, name).cells if is_solution(c)}
    for cell in nb.cells:
        gid = grade_id(cell)
        if is_solution(cell) and (only is None or gid in only):
            cell.source = answers[gid]
    return nb


def submit(course: Path, student: str, assignment: str, notebooks: dict[str, nbformat.NotebookNode]) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")


def autograde(course: Path, assignment: str, *extra: str) -> None:
    nbgrader(course, "autograde", assignment, "--force", *extra)


@dataclass
class Score:
    total: float
    max: float
    cells: dict[str, tuple[float, float]]  # grade_id -> (score, max_score)


def scores(course: Path, assignment: str) -> dict[str, Score]:
    """Per student: total, maximum and per-cell scores, read from the course's gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission(assignment, student.id)
            except Exception:
                continue
            cells = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    cells[grade.name] = (grade.score, grade.max_score)
            out[student.id] = Score(sub.score, sub.max_score, cells)
    return out


def autograded_notebook(course: Path, student: str, assignment: str, name: str) -> nbformat.NotebookNode:
    return nbformat.read(course / "autograded" / student / assignment / name, as_version=4)


def seconds(cell) -> float | None:
    """How long nbgrader took to run the cell (nbclient's timing metadata), None if it did not run."""
    timing = cell.get("metadata", {}).get("execution", {})
    if "iopub.execute_input" not in timing or "shell.execute_reply" not in timing:
        return None
    start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                  for k in ("iopub.execute_input", "shell.execute_reply"))
    return (end - start).total_seconds()


def errors(nb: nbformat.NotebookNode) -> list[str]:
    """'grade_id: ErrorName: message' for every cell whose output is an error."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"{grade_id(cell) or i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def once_per_run(name: str, tmp_path_factory, compute: Callable[[Path], T]) -> T:
    """`compute(folder)` once per test run, even when pytest-xdist runs the tests that need it on
    different workers. (`--dist loadgroup` should keep them together, but with pytest 9.2 and
    pytest-xdist 3.8 it silently does not: pytest-dev/pytest-xdist#1386.) The first worker
    computes under a file lock in the run's shared temporary folder and leaves the result pickled
    there; the others wait for the lock and load it."""
    if "PYTEST_XDIST_WORKER" not in os.environ or fcntl is None:
        return compute(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, common to all its workers
    folder, done = shared / name, shared / f"{name}.pickle"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        if done.exists():
            return pickle.loads(done.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # left by a worker that failed halfway
        folder.mkdir()
        result = compute(folder)
        done.write_bytes(pickle.dumps(result))
        return result
