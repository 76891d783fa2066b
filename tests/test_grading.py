"""Autograding survives real submissions: crafted students graded by real nbgrader.

For one notebook per kind of exercise (answers written in a function, in a method of a class, as
top-level code, as text; on plain numbers or on torch tensors; `exercise_kinds` reads them off
the source notebook), a scratch course is released and a class of crafted students goes through
the instructor's workflow, `grade.py all` (collect, autograde, feedback, export), against a real
gradebook:

    correct (plus warnings, progress bars, floods of output)   full marks, none of the noise in feedback
    partially correct (first answers right, the next one       exactly the points of the right cells,
      raises, a later one right again)                          the later one's tests included
    an answer that loops forever / kills the kernel              its tests zero, every other cell graded
    test cells edited (pass, unlocked, 1000 points, markdown,    the real tests restored, graded once,
      skip-execution tag, metadata deleted), deleted, copied      scored right
    hidden failures (showtraceback, a lying run_cell)            zero
    a notebook that is not even JSON                             reported; the batch goes on

(The untouched notebook scoring zero, and the solution full marks, are checked for every notebook
by tests/test_course.py.) Expected scores come from the source notebook alone: a graded test cell
checks the answer cells whose names it uses, followed back through the cells that define them
(`Exercise.checks`), and earns its points exactly when every answer it checks is right. Breakage
that loses the kernel goes into the LAST answer cell: the tests above it show that grading went
on. The endless loops run in a second autograde of the same course with a short timeout.

By default the crafted class meets the first notebook of each kind (01_efficiency: functions on
numbers; 02_blocks: functions on tensors, also the quickest tensor notebook to run, measured);
EDGEAI_CRAFTED=all grades every notebook.

Cheap static checks run over every notebook: hidden tests never reach notebooks/, and GPU-only
cells are guarded so that validation and autograding skip them.
"""

from __future__ import annotations

import ast
import copy
import csv
import json
import math
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import nbgrader_harness as nh

sys.path.insert(0, str(nh.ROOT))
import grade  # noqa: E402  (the instructor's workflow script at the repository root)

pytestmark = pytest.mark.course


# --- reading a notebook's exercises off its metadata -------------------------------------------

def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell) -> bool:
    """A cell the student writes code into (autograded through the tests below it)."""
    return cell.cell_type == "code" and bool(meta(cell).get("solution")) and not meta(cell).get("grade")


def is_test(cell) -> bool:
    """A locked, autograded test cell."""
    return cell.cell_type == "code" and bool(meta(cell).get("grade")) and not meta(cell).get("solution")


# a region computing on torch tensors: names torch, multiplies matrices (@) or calls a tensor method
TENSOR_METHODS = {"view", "reshape", "transpose", "permute", "flatten", "unsqueeze", "squeeze", "softmax",
                  "matmul", "chunk", "split", "contiguous", "backward"}


def uses_tensors(nodes) -> bool:
    return any((isinstance(n, ast.Name) and n.id == "torch")
               or (isinstance(n, ast.Attribute) and n.attr in TENSOR_METHODS)
               or (isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult)) for n in nodes)


def region_kinds(source: str) -> set[str]:
    """Where the `### BEGIN SOLUTION` regions of an answer cell sit: 'function', 'method of a class'
    or 'top-level code'; and 'tensor code' when a solution computes on torch tensors."""
    lines = source.splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if "### BEGIN SOLUTION" in line]
    ends = [i + 1 for i, line in enumerate(lines) if "### END SOLUTION" in line]
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): treat as a script
        return {"top-level code"} if starts else set()
    kinds = set()
    for line in starts:
        node = next((n for n in tree.body if n.lineno <= line <= n.end_lineno), None)
        if isinstance(node, ast.ClassDef):
            kinds.add("method of a class")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            kinds.add("function")
        else:
            kinds.add("top-level code")
    inside = [n for n in ast.walk(tree) if any(a < getattr(n, "lineno", 0) < b for a, b in zip(starts, ends))]
    if uses_tensors(inside):
        kinds.add("tensor code")
    return kinds


def exercise_kinds(assignment: str) -> set[str]:
    kinds = set()
    for name in nh.notebook_names(assignment):
        for cell in nh.source_notebook(assignment, name).cells:
            if is_answer(cell):
                kinds |= region_kinds(cell.source)
            elif meta(cell).get("solution") and cell.cell_type == "markdown":
                kinds.add("written answer")
    return kinds


def crafted_assignments() -> list[str]:
    """The first notebook of each kind of exercise (EDGEAI_CRAFTED=all: every notebook)."""
    if os.environ.get("EDGEAI_CRAFTED") == "all":
        return nh.assignments()
    chosen, covered = [], set()
    for assignment in nh.assignments():
        kinds = exercise_kinds(assignment)
        if not kinds <= covered:
            chosen.append(assignment)
            covered |= kinds
    return chosen


class _Names(ast.NodeVisitor):
    """The names a cell defines for later cells (bound at top level), binds anywhere, and loads."""

    def __init__(self):
        self.defined, self.bound, self.loaded, self.depth = set(), set(), set(), 0

    def bind(self, name: str) -> None:
        self.bound.add(name)
        if self.depth == 0:
            self.defined.add(name)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.loaded.add(node.id)
        else:
            self.bind(node.id)

    def visit_alias(self, node):
        self.bind((node.asname or node.name).split(".")[0])

    def visit_arg(self, node):
        self.bound.add(node.arg)

    def visit_ExceptHandler(self, node):
        if node.name:
            self.bind(node.name)
        self.generic_visit(node)

    def scope(self, node):  # a body of its own: what it binds stays local
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_FunctionDef(self, node):
        self.bind(node.name)
        self.scope(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef
    visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = scope


def cell_names(source: str) -> tuple[set[str], set[str]] | None:
    """(names a code cell defines for the cells below, names it takes from the cells above), None
    if it is not plain Python. By the whole cell: a name it binds anywhere (a parameter, a loop
    variable, its own `_x`) is not taken from above."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = _Names()
    names.visit(tree)
    return names.defined, names.loaded - names.bound


def checked_answers(cells) -> dict[str, set[str]]:
    """Test cell -> the answer cells it checks: each name the test takes from above leads to the
    last cell above that defines it; that cell counts if it is an answer, and what IT takes from
    above counts too (an answer calling an earlier answer, a demo cell computing with answers
    whose results a test reads). A notebook with a cell that is not plain Python (magics) falls
    back to the safe rule: a test checks every answer above it."""
    names = [cell_names(c.source) if c.cell_type == "code" else (set(), set()) for c in cells]
    if any(n is None for n in names):
        out, above = {}, set()
        for cell in cells:
            if is_answer(cell):
                above.add(nh.grade_id(cell))
            elif is_test(cell):
                out[nh.grade_id(cell)] = set(above)
        return out
    memo: dict[int, set[str]] = {}

    def answers_behind(i: int) -> set[str]:
        if i not in memo:
            found = set()
            for name in names[i][1]:
                j = next((j for j in range(i - 1, -1, -1) if name in names[j][0]), None)
                if j is not None:  # else: a builtin
                    found |= answers_behind(j) | ({nh.grade_id(cells[j])} if is_answer(cells[j]) else set())
            memo[i] = found
        return memo[i]

    return {nh.grade_id(c): answers_behind(i) for i, c in enumerate(cells) if is_test(c)}


@dataclass
class Exercise:
    """One notebook of an assignment: its release, its source and the grading the source implies."""
    name: str
    release: nbformat.NotebookNode
    source: nbformat.NotebookNode

    @property
    def answers(self) -> list[str]:
        return [nh.grade_id(c) for c in self.source.cells if is_answer(c)]

    @property
    def tests(self) -> list[str]:
        return [nh.grade_id(c) for c in self.source.cells if is_test(c)]

    @property
    def checks(self) -> dict[str, set[str]]:
        """Test cell -> the answer cells it checks."""
        return checked_answers(self.source.cells)

    def expected(self, right, lost_at: str | None = None) -> dict[str, float]:
        """Points of each test cell when the answer cells in `right` are right and the others not:
        a test earns its points when every answer it checks is right. `lost_at`: the kernel is lost
        at that answer cell, and every test below it scores zero."""
        out, lost, checks = {}, False, self.checks
        for cell in self.source.cells:
            gid = nh.grade_id(cell)
            lost = lost or (lost_at is not None and gid == lost_at)
            if is_test(cell):
                out[gid] = float(meta(cell)["points"]) if not lost and checks[gid] <= set(right) else 0.0
        return out

    def student(self, right=(), broken: dict[str, str] | None = None) -> nbformat.NotebookNode:
        """The release with the answers in `right` filled in, and the answers in `broken` filled in
        with the given code run first in every solution region."""
        nb = copy.deepcopy(self.release)
        answers = {nh.grade_id(c): c.source for c in self.source.cells if is_answer(c)}
        for cell in nb.cells:
            gid = nh.grade_id(cell)
            if gid in right:
                cell.source = answers[gid]
            if broken and gid in broken:
                cell.source = first_in_regions(answers[gid], broken[gid])
        return nb


def first_in_regions(source: str, code: str) -> str:
    """`code` inserted at the start of every solution region, indented like the region."""
    lines, out = source.splitlines(), []
    for i, text in enumerate(lines):
        out.append(text)
        if "### BEGIN SOLUTION" in text:
            following = next((t for t in lines[i + 1:] if t.strip()), "")
            indent = following[:len(following) - len(following.lstrip())]
            out.extend(indent + line for line in code.splitlines())
    return "\n".join(out)


def find(nb, gid: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if nh.grade_id(c) == gid)


def new_cell(source: str):
    return nbformat.v4.new_code_cell(source)


def duplicate(cell):
    twin = copy.deepcopy(cell)
    twin["id"] = uuid.uuid4().hex[:8]
    return twin


# --- the crafted class ----------------------------------------------------------------------------

NOISE = ("import warnings, tqdm; warnings.warn('this API is deprecated', FutureWarning); "
         "list(tqdm.tqdm(range(3)))")
FLOOD = "print('x' * 100_000)\nfor i in range(5_000):\n    print(i)"
# nbgrader's showtraceback exploit, with the names built at run time so that only nbgrader's own
# defence (not our scan of the code) stands between it and full marks
SHOWTRACEBACK = """\
import sys
_shell = sys.modules["IPy" + "thon"].core.interactiveshell
setattr(getattr(_shell, "Interactive" + "Shell"), "show" + "traceback", lambda self, *args, **kwargs: None)"""
LYING_RUN_CELL = """\
_ip = get_ipython()
_run_cell = _ip.run_cell
def _lying_run_cell(*args, **kwargs):
    result = _run_cell(*args, **kwargs)
    result.error_in_exec = result.error_before_exec = None
    return result
_ip.run_cell = _lying_run_cell
_ip.showtraceback = lambda *args, **kwargs: None"""
KILL = "import os\nos._exit(1)"
LOOP = "while True:\n    pass"
WAIT_FOREVER = "import time\nwhile True:\n    time.sleep(0.1)"  # loops without taking a core from other tests
WAIT_IGNORING_INTERRUPTS = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + WAIT_FOREVER


def partial(ex: Exercise) -> set[str]:
    """The first k answers, k as near half as possible such that some tests pass and some fail."""
    total = sum(ex.expected(ex.answers).values())
    for k in sorted(range(1, len(ex.answers)), key=lambda k: abs(k - len(ex.answers) / 2)):
        if 0 < sum(ex.expected(ex.answers[:k]).values()) < total:
            return set(ex.answers[:k])
    return set(ex.answers[:len(ex.answers) // 2])


def partial_raises(ex: Exercise) -> str:
    """The answer the partial student gets wrong: the first one after the right ones."""
    return ex.answers[len(partial(ex))]


def main_class(ex: Exercise) -> dict[str, tuple[nbformat.NotebookNode, dict[str, float]]]:
    """student -> (notebook, expected points per test cell) for the `grade.py all` run."""
    everything, last = set(ex.answers), ex.answers[-1]
    half = partial(ex)
    students = {}

    nb = ex.student(broken={gid: NOISE for gid in ex.answers})  # correct, noisy
    nb.cells.insert(find(nb, ex.answers[0]) + 1, new_cell(FLOOD))
    students["noisy"] = nb, ex.expected(everything)

    # the first answer that is not right raises ZeroDivisionError, the ones after it are left
    # untouched, except the last, which is right again: its tests must still earn their points
    later = set(ex.answers[len(half) + 1:][-1:])
    students["partial"] = (ex.student(right=half | later, broken={partial_raises(ex): "1 / 0"}),
                           ex.expected(half | later))

    # the same answers, and every test cell tampered with: edited (asserts replaced by `pass`, with
    # 1000 points, unlocked, marked not graded and tagged to be skipped), turned into markdown,
    # stripped of its metadata, deleted, or duplicated; the markdown deleted, an answer duplicated
    nb = ex.student(right=half)
    for k, gid in enumerate(ex.tests):
        i, way = find(nb, gid), k % 5
        cell = nb.cells[i]
        if way == 0:
            cell.source = "pass"
            cell.metadata.nbgrader.update(points=1000, locked=False, grade=False)
            cell.metadata["tags"] = ["skip-execution"]
        elif way == 1:
            del nb.cells[i]
        elif way == 2:
            twin = duplicate(cell)
            twin.source = "pass"
            nb.cells.insert(i + 1, twin)  # nbgrader grades the last copy: it must be restored
        elif way == 3:
            cell.cell_type = "markdown"
            del cell["outputs"], cell["execution_count"]
        else:
            cell.source = "pass"
            del cell.metadata["nbgrader"]
    nb.cells = [c for c in nb.cells if not (c.cell_type == "markdown" and meta(c).get("locked"))]
    i = find(nb, ex.answers[0])
    nb.cells.insert(i + 1, duplicate(nb.cells[i]))
    students["tampered"] = nb, ex.expected(half)

    for student, exploit in [("showtraceback", SHOWTRACEBACK), ("lying-run-cell", LYING_RUN_CELL)]:
        nb = ex.student()
        nb.cells.insert(find(nb, ex.answers[0]), new_cell(exploit))
        students[student] = nb, ex.expected(())

    nb = ex.student(right=everything)
    nb.cells.insert(find(nb, last), new_cell(KILL))
    students["kernel-killed"] = nb, ex.expected(everything, lost_at=last)
    return students


def loop_class(ex: Exercise) -> dict[str, tuple[nbformat.NotebookNode, dict[str, float]]]:
    everything, first, last = set(ex.answers), ex.answers[0], ex.answers[-1]
    # a stray loop after the first (right) answer: interrupted, and the tests below still pass;
    # a loop inside the last answer: the tests calling it time out and score zero
    nb = ex.student(right=everything - {last}, broken={last: LOOP})
    nb.cells[find(nb, first)].source += "\n" + WAIT_FOREVER
    students = {"loops": (nb, ex.expected(everything - {last}))}
    # a loop an interrupt can't stop: the kernel is given up, the cells after it score zero
    nb = ex.student(right=everything)
    nb.cells[find(nb, last)].source += "\n" + WAIT_IGNORING_INTERRUPTS
    students["loop-unstoppable"] = nb, ex.expected(everything, lost_at=last)
    return students


@dataclass
class Graded:
    assignment: str
    course: Path
    exercises: list[Exercise]
    expected: dict[str, dict[str, float]]  # student -> test cell -> points
    scores: dict[str, nh.Score]
    workflow: subprocess.CompletedProcess  # `grade.py all`
    loop_timeout: int

    def cells(self, student: str) -> dict[str, float]:
        return {gid: self.scores[student].cells[gid][0] for gid in self.expected[student]}

    def autograded(self, student: str) -> list[nbformat.NotebookNode]:
        return [nh.autograded_notebook(self.course, student, self.assignment, ex.name) for ex in self.exercises]


def _merge(classes: list[tuple[str, dict]]) -> dict:
    """Per student: the notebooks of every exercise and the union of their expected points."""
    out = {}
    for ex_name, students in classes:
        for student, (nb, expected) in students.items():
            nbs, points = out.setdefault(student, ({}, {}))
            nbs[ex_name] = nb
            points.update(expected)
    return out


_graded: dict[str, Graded] = {}


def _grade(assignment: str, tmp: Path) -> Graded:
    course = nh.make_course(tmp, assignment)
    exercises = [Exercise(n, nh.release_notebook(course, assignment, n), nh.source_notebook(assignment, n))
                 for n in nh.notebook_names(assignment)]

    # the main class, handed in through an inbox the way an LMS export looks
    main = _merge([(ex.name, main_class(ex)) for ex in exercises])
    inbox = tmp / "inbox"
    for student, (nbs, _) in main.items():
        for name, nb in nbs.items():
            # one student saved a copy under another name: collect still finds it
            filename = name.replace(".ipynb", "-Copy1.ipynb") if student == "partial" else name
            (inbox / student / "upload").mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, inbox / student / "upload" / filename)
    (inbox / "broken").mkdir()
    for ex in exercises:
        (inbox / "broken" / ex.name).write_text('{"cells": [ {"cell_type": "code", "sour')
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("JUPYTER_CONFIG_DIR", None)
    workflow = subprocess.run([sys.executable, str(nh.ROOT / "grade.py"), "--course", str(course), "all",
                               str(inbox), "--to", "grades.csv"],
                              capture_output=True, text=True, env=env, timeout=1800)

    # endless loops: a second autograde of the same course (only the new students) with a short
    # timeout that still fits the slowest cell of the correct notebook with room to spare
    noisy = [nh.autograded_notebook(course, "noisy", assignment, ex.name) for ex in exercises]
    slowest = max((nh.seconds(c) or 0.0) for nb in noisy for c in nb.cells)
    timeout = max(5, math.ceil(3 * slowest))
    loops = _merge([(ex.name, loop_class(ex)) for ex in exercises])
    for student, (nbs, _) in loops.items():
        nh.submit(course, student, assignment, nbs)
    nh.nbgrader(course, "autograde", assignment, f"--Execute.timeout={timeout}", "--Execute.iopub_timeout=5",
                check=False)  # nbgrader retries the broken student and fails again

    expected = {s: points for s, (_, points) in {**main, **loops}.items()}
    return Graded(assignment, course, exercises, expected, nh.scores(course, assignment), workflow, timeout)


@pytest.fixture
def graded(request, tmp_path_factory) -> Graded:
    assignment = request.param
    if assignment not in _graded:
        _graded[assignment] = nh.once_per_run(f"crafted-{assignment}", tmp_path_factory,
                                              lambda folder: _grade(assignment, folder))
    return _graded[assignment]


CRAFTED = [pytest.param(a, marks=pytest.mark.xdist_group(f"{a}-crafted"), id=a) for a in crafted_assignments()]
crafted = pytest.mark.parametrize("graded", CRAFTED, indirect=True)


def errors_of(nbs, ename: str) -> list[str]:
    return [e for nb in nbs for e in nh.errors(nb) if f": {ename}:" in e]


# --- the crafted class, graded ----------------------------------------------------------------------

@crafted
def test_correct_answers_get_full_marks_and_noise_stays_out_of_feedback(graded):
    assert graded.cells("noisy") == graded.expected["noisy"]
    assert graded.scores["noisy"].total == sum(graded.expected["noisy"].values()) > 0
    for nb in graded.autograded("noisy"):
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                text = out.get("text", "") or str(out.get("data", {}).get("text/plain", ""))
                assert "FutureWarning" not in text, "a library warning reached the feedback"
                assert out.get("name") != "stderr" or "it/s]" not in text, "a progress bar reached the feedback"
                assert len(text) <= 20_000 + 100 and text.count("\n") <= 200, "a long output was not cut"
    flood = [c for nb in graded.autograded("noisy") for c in nb.cells if c.source == FLOOD]
    assert flood and "Output truncated" in "".join(o.get("text", "") for o in flood[0].outputs)
    for ex in graded.exercises:
        html = (graded.course / "feedback" / "noisy" / graded.assignment / ex.name.replace(".ipynb", ".html"))
        assert html.exists(), "grade.py all made no feedback"
        assert "FutureWarning: this API is deprecated" not in html.read_text()


@crafted
def test_partially_correct_scores_exactly_the_right_cells(graded):
    """The first answers right, the next one raising ZeroDivisionError, the rest untouched except
    the last answer, right again: the tests after the error are still run and earn their points."""
    expected = graded.expected["partial"]
    assert graded.cells("partial") == expected
    if any(len(ex.answers) > 1 for ex in graded.exercises):
        assert 0 < graded.scores["partial"].total < graded.scores["partial"].max
    later_checked = 0
    for ex, nb in zip(graded.exercises, graded.autograded("partial")):
        raised = [i for i, c in enumerate(nb.cells) for out in c.get("outputs", [])
                  if out.get("output_type") == "error" and out.get("ename") == "ZeroDivisionError"]
        assert raised, f"{ex.name}: the wrong answer did not raise"
        later, full = ex.answers[-1], ex.expected(ex.answers)
        if later == partial_raises(ex) or later in partial(ex):
            continue  # too few answers for a right one after the wrong one
        for gid, answers in ex.checks.items():
            if later in answers:  # a test of the later answer, run after the error: full marks
                assert find(nb, gid) > min(raised)
                assert graded.scores["partial"].cells[gid] == (full[gid], full[gid]) and full[gid] > 0, gid
                later_checked += 1
    if any(len(ex.answers) > 2 for ex in graded.exercises):
        assert later_checked, "no test of a right answer ran after the error"


@crafted
def test_edited_deleted_and_duplicated_tests_are_restored_and_graded_once(graded):
    assert graded.cells("tampered") == graded.expected["tampered"]
    for ex, nb in zip(graded.exercises, graded.autograded("tampered")):
        original = {nh.grade_id(c): c for c in ex.source.cells if is_test(c)}
        restored = [c for c in nb.cells if nh.grade_id(c) in original]
        assert sorted(nh.grade_id(c) for c in restored) == sorted(original), "each test graded exactly once"
        order = [nh.grade_id(c) for c in ex.source.cells]
        for cell in restored:
            gid, source = nh.grade_id(cell), original[nh.grade_id(cell)]
            assert cell.cell_type == "code" and cell.source.endswith(source.source), f"{gid} not restored"
            assert meta(cell)["points"] == meta(source)["points"] and meta(cell)["locked"] and meta(cell)["grade"]
            assert "skip-execution" not in cell.metadata.get("tags", [])
            above = [a for a in ex.answers if order.index(a) < order.index(gid)]
            assert all(find(nb, gid) > find(nb, a) for a in above), f"{gid} is above an answer it checks"


@crafted
def test_hiding_failures_from_ipython_scores_zero(graded):
    for student in ("showtraceback", "lying-run-cell"):
        assert graded.cells(student) == graded.expected[student], student
    # showtraceback overridden: nbgrader's own defence (the kernel replied 'error') shows the error
    hidden = graded.autograded("showtraceback")
    assert not errors_of(hidden, "TamperingSuspected")
    assert any("showtraceback was disabled" in line for nb in hidden for c in nb.cells
               for out in c.get("outputs", []) for line in out.get("traceback", []))
    # a run_cell that lies about errors defeats nbgrader; the scan of the student's code catches it
    assert errors_of(graded.autograded("lying-run-cell"), "TamperingSuspected")
    assert any(line.startswith("lying-run-cell/") and "tampering suspected" in line for line in review(graded))


def review(graded: Graded) -> list[str]:
    """The lines of `grade.py`'s report that ask for a person's look."""
    return [line.split("review by hand: ", 1)[1] for line in graded.workflow.stdout.splitlines()
            if "review by hand: " in line]


@crafted
def test_a_killed_kernel_keeps_the_grades_before_it(graded):
    assert graded.cells("kernel-killed") == graded.expected["kernel-killed"]
    assert errors_of(graded.autograded("kernel-killed"), "NotRun")
    assert any(line.startswith(f"kernel-killed/{graded.assignment}/") and "kernel died" in line
               for line in review(graded))


@crafted
def test_endless_loops_time_out_and_the_rest_is_graded(graded):
    for student in ("loops", "loop-unstoppable"):
        assert graded.cells(student) == graded.expected[student], f"{student} (timeout {graded.loop_timeout} s)"
    tests = {gid for ex in graded.exercises for gid in ex.tests}
    timed_out = [e.split(":")[0] for e in errors_of(graded.autograded("loops"), "CellTimeoutError")]
    assert set(timed_out) & tests, f"no test cell timed out on the looping answer: {timed_out}"
    assert all(ex.answers[0] in timed_out for ex in graded.exercises), "the stray loop was not interrupted"
    assert errors_of(graded.autograded("loop-unstoppable"), "NotRun")


@crafted
def test_a_broken_notebook_does_not_stop_the_batch(graded):
    out = graded.workflow.stdout
    assert graded.workflow.returncode == 1, "grade.py must fail loudly when a submission was not graded"
    assert f"NOT GRADED (see nbgrader's log above; the gradebook has 0 for it): broken/{graded.assignment}" in out
    assert graded.scores["broken"].total == 0
    assert set(graded.expected) <= set(graded.scores), "every other student was graded"


@crafted
def test_workflow_exports_every_student_to_csv(graded):
    with open(graded.course / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f) if r["assignment"] == graded.assignment}
    main = {s for s in graded.expected if not s.startswith("loop")} | {"broken"}
    assert set(rows) == main
    for student in main - {"broken"}:
        assert float(rows[student]["score"]) == sum(graded.expected[student].values()), student
        assert float(rows[student]["max_score"]) == graded.scores[student].max
    seconds = json.loads((graded.course / grade.TIMES).read_text())  # for the next run's order
    assert graded.assignment in seconds and seconds[graded.assignment] > 0


def test_autograde_hands_out_the_longest_assignments_first(tmp_path):
    """With several jobs the longest assignment must start first, or one core idles at the end
    while the last, long one runs alone (longest-processing-time-first scheduling)."""
    names = ["01_efficiency", "02_blocks", "07_evolution", "08_estimation"]
    assert grade.heaviest_first(tmp_path, names) == names[::-1]  # no record yet: the later notebooks first
    (tmp_path / grade.TIMES).write_text(json.dumps({"01_efficiency": 9.0, "02_blocks": 31.0, "07_evolution": 25.0}))
    assert grade.heaviest_first(tmp_path, names) == ["02_blocks", "07_evolution", "01_efficiency", "08_estimation"]
    (tmp_path / grade.TIMES).write_text("[]")  # not a record: ignored, not a crash
    assert grade.heaviest_first(tmp_path, names) == names[::-1]


# --- every notebook, statically -----------------------------------------------------------------------

EVERY = [pytest.param(a, id=a) for a in nh.assignments()]


@pytest.mark.parametrize("assignment", EVERY)
def test_hidden_tests_appear_in_solutions_and_never_in_notebooks(assignment):
    """Not only the markers: no line of a hidden test reaches any file of the release."""
    released = "\n".join(p.read_text(errors="replace") for p in (nh.RELEASE / assignment).rglob("*") if p.is_file())
    for name in nh.notebook_names(assignment):
        source = nh.source_notebook(assignment, name)
        hidden, visible = [], set()
        for cell in source.cells:
            inside = False
            for line in cell.source.splitlines():
                if "### BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "### END HIDDEN TESTS" in line:
                    inside = False
                elif inside:
                    hidden.append(line.strip())
                else:
                    visible.add(line.strip())
        assert hidden, f"{name}: no hidden tests"
        distinctive = [line for line in hidden if len(line) > 25 and line not in visible]
        assert distinctive, f"{name}: hidden tests are only short or repeated lines"
        leaked = [line for line in distinctive if line in released]
        assert not leaked, f"{name}: hidden test lines in notebooks/{assignment}: {leaked[:3]}"


def gpu_cells_not_skipped(sources: list[str]) -> list[str]:
    """`if` blocks that run on torch.cuda.is_available() without checking NBGRADER_EXECUTION."""
    cuda_flags: dict[str, bool] = {}  # name = <expression with cuda.is_available()> -> guarded?
    found = []

    def calls_cuda(node) -> bool:
        return any(isinstance(n, ast.Attribute) and n.attr == "is_available" and "cuda" in ast.unparse(n.value)
                   for n in ast.walk(node))

    def guarded(node) -> bool:
        text = ast.unparse(node)
        return "NBGRADER_EXECUTION" in text or any(cuda_flags.get(n.id) for n in ast.walk(node) if isinstance(n, ast.Name))

    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and calls_cuda(node.value):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        cuda_flags[target.id] = "NBGRADER_EXECUTION" in ast.unparse(node.value)
        for node in ast.walk(tree):
            if isinstance(node, ast.If):
                uses_cuda = calls_cuda(node.test) or any(isinstance(n, ast.Name) and n.id in cuda_flags
                                                         for n in ast.walk(node.test))
                if uses_cuda and not guarded(node.test):
                    found.append(f"if {ast.unparse(node.test)}:")
    return found


def test_gpu_cell_check_finds_unguarded_cells():
    good = ['import os, torch\nif torch.cuda.is_available() and not os.environ.get("NBGRADER_EXECUTION"):\n    run()',
            'ON_GPU = torch.cuda.is_available() and not os.environ.get("NBGRADER_EXECUTION")', "if ON_GPU:\n    run()",
            'device = "cuda" if torch.cuda.is_available() else "cpu"']
    assert gpu_cells_not_skipped(good) == []
    assert gpu_cells_not_skipped(["if torch.cuda.is_available():\n    run()"]) == ["if torch.cuda.is_available():"]
    assert gpu_cells_not_skipped(["gpu = torch.cuda.is_available()", "if gpu:\n    run()"]) == ["if gpu:"]


@pytest.mark.parametrize("assignment", EVERY)
def test_gpu_only_cells_are_skipped_by_nbgrader(assignment):
    for name in nh.notebook_names(assignment):
        sources = [c.source for c in nh.source_notebook(assignment, name).cells if c.cell_type == "code"]
        unguarded = gpu_cells_not_skipped(sources)
        assert not unguarded, (f"{name}: GPU-only cells must also check `not os.environ.get('NBGRADER_EXECUTION')`"
                               f" so that validation and autograding skip them: {unguarded}")


def test_exercise_kinds_are_read_from_the_code():
    assert region_kinds("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION") == {"function"}
    assert region_kinds("class B:\n    def forward(self, x):\n        ### BEGIN SOLUTION\n        return x\n"
                        "        ### END SOLUTION") == {"method of a class"}
    assert region_kinds("### BEGIN SOLUTION\nx = 1\n### END SOLUTION") == {"top-level code"}
    shuffle = "def f(x, g):\n    ### BEGIN SOLUTION\n    return x.view(g, -1).transpose(0, 1)\n    ### END SOLUTION"
    assert region_kinds(shuffle) == {"function", "tensor code"}
    assert region_kinds("import torch\ndef f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION") == {"function"}
    assert region_kinds("def f(a, b):\n    ### BEGIN SOLUTION\n    return a @ b\n    ### END SOLUTION") == {"function", "tensor code"}
    assert crafted_assignments()[:2] == ["01_efficiency", "02_blocks"]  # numbers; tensors (channel_shuffle, attention)
    assert all(exercise_kinds(a) for a in nh.assignments())


def _cell(source: str, gid: str | None = None, answer: bool = False, points: int = 1):
    cell = nbformat.v4.new_code_cell(source)
    if gid:
        cell.metadata["nbgrader"] = {"grade_id": gid, "solution": answer, "grade": not answer, "points": points}
    return cell


def test_a_test_checks_the_answers_behind_the_names_it_uses():
    cells = [_cell("import math\nfrom torch import nn"),
             _cell("def f(x):\n    return math.sqrt(x)", "A", answer=True),
             _cell("def g(x, f=None):\n    return f(x) + h(x)\ndef h(x):\n    return [y for y in x]", "B", answer=True),
             _cell("v = g(1)\nw = 2"),
             _cell("assert f(4) == 2", "t-f"),
             _cell("assert v == 3", "t-v"),
             _cell("_x = len([1])\nassert _x == 1\nfor y in range(2):\n    pass", "t-own"),
             _cell("assert w == 2", "t-w"),  # w is set after g(1), which raises when g is wrong
             _cell("def f(x):\n    return x", "C", answer=True),
             _cell("assert f(2) == 2 and nn", "t-f2")]
    assert checked_answers(cells) == {"t-f": {"A"}, "t-v": {"B"}, "t-own": set(), "t-w": {"B"}, "t-f2": {"C"}}
    # B's g takes f as a parameter (not answer A's f); a demo cell's results depend on what it calls
    cells[2] = _cell("def g(x):\n    return f(x)", "B", answer=True)
    assert checked_answers(cells)["t-v"] == {"A", "B"}
    # a cell that is not plain Python: every answer above
    cells.insert(4, _cell("%timeit g(1)"))
    assert checked_answers(cells) == {"t-f": {"A", "B"}, "t-v": {"A", "B"}, "t-own": {"A", "B"}, "t-w": {"A", "B"},
                                      "t-f2": {"A", "B", "C"}}


def test_collect_finds_renamed_copies_and_takes_the_newest(tmp_path):
    course, inbox = tmp_path / "course", tmp_path / "inbox"
    (course / "solutions" / "01_efficiency").mkdir(parents=True)
    (course / "solutions" / "01_efficiency" / "01_efficiency.ipynb").write_text("{}")
    (inbox / "ann" / "deep").mkdir(parents=True)
    (inbox / "bob smith").mkdir(parents=True)
    (inbox / "ann" / "deep" / "01_efficiency.ipynb").write_text("exact")
    (inbox / "ann" / "01_efficiency-Copy1.ipynb").write_text("copy")
    (inbox / "bob smith" / "01_efficiency (1).ipynb").write_text("old")
    (inbox / "bob smith" / "01_efficiency (2).ipynb").write_text("new")
    os.utime(inbox / "bob smith" / "01_efficiency (1).ipynb", (1e9, 1e9))
    (inbox / "carl").mkdir()
    (inbox / "carl" / "notes.txt").write_text("no notebook")
    taken = grade.collect(course, inbox, ["01_efficiency"])
    assert sorted((s, a) for s, a, _ in taken) == [("ann", "01_efficiency"), ("bob_smith", "01_efficiency")]
    submitted = course / "submitted"
    assert (submitted / "ann" / "01_efficiency" / "01_efficiency.ipynb").read_text() == "exact"
    assert (submitted / "bob_smith" / "01_efficiency" / "01_efficiency.ipynb").read_text() == "new"
    assert (submitted / "ann" / "01_efficiency" / "timestamp.txt").read_text().endswith(" UTC")
