"""The course grades correctly: real nbgrader over every assignment in solutions/.

For each assignment (present and future):
- `nbgrader generate_assignment` in a scratch copy reproduces the committed `notebooks/` exactly;
- `nbgrader autograde` against a real gradebook gives the solution full marks on every graded
  cell and the untouched release zero on every graded cell;
- the solution runs without any error (checked on the autograded notebook, which nbgrader has
  just executed: the notebook is not executed a third time);
- no notebook in the repository has outputs, and hidden tests never reach the release.
"""

from __future__ import annotations

import filecmp
import json

import nbformat
import pytest

import nbgrader_harness as nh

ASSIGNMENTS = nh.assignments()
GROUPED = [pytest.param(a, marks=pytest.mark.xdist_group(a), id=a) for a in ASSIGNMENTS]
pytestmark = pytest.mark.course

_graded: dict[str, tuple] = {}


@pytest.fixture
def graded(request, tmp_path_factory):
    """Release, submit the solution (student 'solver') and the untouched release (student
    'blank'), autograde both once per assignment, and return (course dir, scores)."""
    assignment = request.param
    if assignment not in _graded:
        course = nh.make_course(tmp_path_factory.mktemp(assignment), assignment)
        names = nh.notebook_names(assignment)
        nh.submit(course, "solver", assignment, {n: nh.solved(course, assignment, n) for n in names})
        nh.submit(course, "blank", assignment, {n: nh.release_notebook(course, assignment, n) for n in names})
        nh.autograde(course, assignment)
        _graded[assignment] = (course, nh.scores(course, assignment))
    return assignment, *_graded[assignment]


def test_there_are_assignments():
    assert ASSIGNMENTS, "solutions/ holds no assignment"
    assert sorted(p.name for p in nh.RELEASE.iterdir() if p.is_dir()) == ASSIGNMENTS, (
        "notebooks/ must hold exactly one released folder per folder of solutions/"
    )


@pytest.mark.parametrize("assignment", GROUPED)
def test_release_in_sync(assignment, tmp_path):
    course = nh.make_course(tmp_path, assignment)
    fresh, committed = course / "notebooks" / assignment, nh.RELEASE / assignment
    fresh_files = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file())
    assert fresh_files == committed_files
    drift = [f for f in fresh_files if not filecmp.cmp(fresh / f, committed / f, shallow=False)]
    assert not drift, f"notebooks/{assignment} is out of date: run `nbgrader generate_assignment {assignment} --force` ({drift})"


@pytest.mark.parametrize("graded", GROUPED, indirect=True)
def test_solution_scores_full_marks(graded):
    assignment, course, scores = graded
    solver = scores["solver"]
    assert solver.max > 0, "the assignment has no graded cell"
    short = {cell: s for cell, s in solver.cells.items() if s[0] != s[1]}
    assert not short, f"the solution loses points in {short}"
    assert solver.total == solver.max


@pytest.mark.parametrize("graded", GROUPED, indirect=True)
def test_untouched_release_scores_zero(graded):
    assignment, course, scores = graded
    blank = scores["blank"]
    passing = {cell: s for cell, s in blank.cells.items() if s[0] != 0}
    assert not passing, f"graded cells that pass on the untouched notebook: {passing}"
    assert blank.total == 0 and blank.max == scores["solver"].max


@pytest.mark.parametrize("graded", GROUPED, indirect=True)
def test_solution_runs_without_error(graded):
    assignment, course, scores = graded
    for name in nh.notebook_names(assignment):
        nb = nh.autograded_notebook(course, "solver", assignment, name)
        assert not nh.errors(nb), f"{name} raised: {nh.errors(nb)}"
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code" and c.source.strip())


def _notebooks():
    return sorted(p for d in (nh.SOLUTIONS, nh.RELEASE) for p in d.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.relative_to(nh.ROOT).as_posix())
def test_no_outputs_committed(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("assignment", GROUPED)
def test_hidden_tests_and_solutions_not_released(assignment):
    for name in nh.notebook_names(assignment):
        source = nbformat.read(nh.SOLUTIONS / assignment / name, as_version=4)
        release = nbformat.read(nh.RELEASE / assignment / name, as_version=4)
        text = "\n".join(c.source for c in release.cells)
        for marker in ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION"):
            assert marker not in text, f"{name}: {marker!r} reached the release"
        hidden = [nh.grade_id(c) for c in source.cells if "BEGIN HIDDEN TESTS" in c.source]
        assert hidden, f"{name}: no graded cell has hidden tests"
        graded = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert all(c.metadata["nbgrader"].get("locked") for c in graded), "graded test cells must be locked"
