"""nbgrader configuration of the course.

The repository root is nbgrader's course directory:
    solutions/<assignment>/   the instructor's source notebooks (solutions and hidden tests)
    notebooks/<assignment>/   what students open; made only by `nbgrader generate_assignment`
    submitted/, autograded/, feedback/, gradebook.db   the instructor's grading work (git-ignored)

Autograding is set up for real submissions: hundreds of notebooks, some broken, a few tampered
with. What nbgrader 0.9.6 does by itself, and what the classes below add (tests/test_grading.py
hands crafted submissions to real nbgrader and checks every point):

- A locked test cell a student edited is restored from the gradebook, hidden tests included
  (nbgrader: checksums). `RestoreReleasedMetadata` also gives every cell exactly the nbgrader
  metadata it was released with (a student can't unlock a test, mark it ungraded or give it 1000
  points) and drops the `skip-execution` tag, with which nbclient would skip a test altogether.
- A duplicated graded cell: nbgrader keeps the last copy and empties the metadata of the others,
  which then fails its schema check and stops the WHOLE batch (jupyter/nbgrader#1083);
  `RestoreReleasedMetadata` keeps the last copy too but removes the others' nbgrader metadata.
- A graded cell the student deleted is put back below the answers it checks and graded
  (`RestoreMissingCells`; nbgrader's own `OverwriteCells.add_missing_cells` raises KeyError when
  the cell before the deleted one is gone too or is a locked markdown cell).
- Hidden failures: an overridden `showtraceback` still scores zero (nbgrader's `Execute` takes the
  error from the kernel's reply status); code reaching further into IPython, e.g. a `run_cell`
  that reports success, is caught by `FlagTampering`.
- A cell that runs past `Execute.timeout` is interrupted and scores zero; the notebook goes on. A
  kernel that dies or can't be interrupted no longer loses the whole notebook (`ExecuteToTheEnd`).
  A notebook nbgrader can't read fails alone: nbgrader logs it and grades the next student
  (`grade.py` lists such notebooks at the end).
- Feedback stays readable: long outputs are cut (`LimitOutputSize`), warnings and progress bars on
  stderr are dropped before grading (`IgnoreNoise`), since nbgrader zeroes a test cell for any
  stderr output.

GPU-only cells: nbgrader sets the environment variable NBGRADER_EXECUTION ('validate' or
'autograde') while it runs a notebook, so a cell that only makes sense on a GPU is written
    if torch.cuda.is_available() and not os.environ.get("NBGRADER_EXECUTION"):
and is skipped by validation and autograding even on a grading machine that has a GPU.
"""

import copy
import re
from pathlib import Path

import nbformat
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearOutput, Execute, IgnorePattern,
                                    LimitOutput, NbGraderPreprocessor, OverwriteCells, OverwriteKernelspec,
                                    SaveAutoGrades)
from traitlets import Bool, Integer, Unicode


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _source_notebook(config, info):
    """The instructor's source notebook of the one being graded, None if it can't be read."""
    coursedir = CourseDirectory(config=config)
    folder = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"]))
    try:
        return nbformat.read(folder / f"{info['notebook']}.ipynb", as_version=4)
    except (OSError, ValueError):
        return None


class RestoreReleasedMetadata(NbGraderPreprocessor):
    """Give every cell of a submission exactly the nbgrader metadata it was released with.

    A cell whose grade_id the gradebook knows gets that cell's released flags (grade, solution,
    locked, task, points, cell type); when several cells carry the same grade_id (a copied cell)
    the last one keeps it, as nbgrader's DeduplicateIds does, and the others become plain cells.
    Any other nbgrader metadata (a student's own, half-deleted or of an old schema) is removed, so
    no submission can fail nbgrader's metadata checks and stop the batch.
    """

    skip_tag = Unicode("skip-execution", help="the cell tag that makes nbclient skip a cell: never honoured "
                       "in a submission (a student could skip a test with it)").tag(config=True)

    def preprocess(self, nb, resources):
        released = self._released(resources["nbgrader"])
        seen = set()
        for cell in reversed(nb.cells):
            tags = cell.get("metadata", {}).get("tags")
            if isinstance(tags, list) and self.skip_tag in tags:
                cell.metadata["tags"] = [t for t in tags if t != self.skip_tag]
            if "nbgrader" not in cell.get("metadata", {}):
                continue
            gid = _grade_id(cell)
            if gid in released and gid not in seen:
                seen.add(gid)
                cell.metadata["nbgrader"] = copy.deepcopy(released[gid])
            else:
                self.log.warning("Removing nbgrader metadata of an unknown or copied cell (grade_id %r)", gid)
                del cell.metadata["nbgrader"]
        return nb, resources

    @staticmethod
    def _released(info) -> dict:
        with Gradebook(info["db_url"]) as gb:
            source = gb.find_notebook(info["notebook"], info["assignment"])
            meta = {c.name: {"grade": False, "grade_id": c.name, "locked": c.locked, "schema_version": 3,
                             "solution": False, "task": False, "cell_type": c.cell_type}
                    for c in source.source_cells}
            for c in source.grade_cells:
                meta[c.name].update(grade=True, points=c.max_score)
            for c in source.solution_cells:
                meta[c.name]["solution"] = True
            for c in source.task_cells:
                meta[c.name].update(task=True, points=c.max_score)
        return meta


class RestoreMissingCells(OverwriteCells):
    """nbgrader's OverwriteCells (restores edited locked cells), and graded cells that a student
    deleted are put back: after the nearest cell that precedes them in the source notebook and is
    still in the submission, so a test still runs after the answer it checks. (nbgrader's own
    `add_missing_cells` looks only at the one cell before and raises KeyError when that one is
    gone too or is a locked markdown cell.)"""

    def preprocess(self, nb, resources):
        self.add_missing_cells = False  # ours below, not nbgrader's
        nb, resources = super().preprocess(nb, resources)
        info = resources["nbgrader"]
        source_nb = _source_notebook(self.config, info)
        order = [g for g in map(_grade_id, source_nb.cells) if g] if source_nb else []
        with Gradebook(info["db_url"]) as gb:
            source = gb.find_notebook(info["notebook"], info["assignment"])
            cells = {c.name: c for c in source.source_cells}
            solutions = {c.name for c in source.solution_cells}
            graded = {c.name: ("grade", c.max_score) for c in source.grade_cells}
            graded.update({c.name: ("task", c.max_score) for c in source.task_cells})
            order += [name for name in cells if name not in order]  # source file unreadable: gradebook order
            for name in order:
                if name not in graded or name in {_grade_id(c) for c in nb.cells}:
                    continue
                self.log.warning("Graded cell %s is missing from the submission: restoring it", name)
                kind, points = graded[name]
                cell = self.missing_cell_transform(cells[name], points, is_solution=name in solutions,
                                                   is_task=kind == "task")
                nb.cells.insert(self._position(nb, order, name), cell)
        return nb, resources

    @staticmethod
    def _position(nb, order, name) -> int:
        present = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
        before = [present[g] for g in order[:order.index(name)] if g in present]
        return max(before) + 1 if before else 0


def _error(ename: str, evalue: str):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _is_graded_code(cell) -> bool:
    return cell.cell_type == "code" and bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


class ExecuteToTheEnd(Execute):
    """nbgrader's Execute, except that a kernel that dies (a student's `os._exit`, a crash, memory)
    or can't be interrupted after a timeout no longer fails the whole notebook: the cells that ran
    keep their results, the cell that broke and every graded cell after it get an error (zero), and
    the notebook is graded and gets feedback like any other."""

    def preprocess(self, nb, resources=None, km=None):
        self._broken = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if self._broken is not None:
            if _is_graded_code(cell):
                cell.outputs = [_error("NotRun", f"not run: {self._broken}")]
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError) as err:
            self._broken = f"the kernel {'died' if isinstance(err, DeadKernelError) else 'stopped responding'} in cell {index}"
            self.log.error("Grading the rest of the notebook as not run: %s", self._broken)
            cell.outputs.append(_error(type(err).__name__, self._broken))
            return cell, resources


class FlagTampering(NbGraderPreprocessor):
    """Zero the tests that run after student code reaching into IPython's machinery.

    nbgrader catches the classic exploit (an overridden `showtraceback` hides the error output,
    but the kernel still replies 'error'). Code that also rewrites the reply (`run_cell`), the test
    source (input or AST transformers) or the exception handling passes every test, and nothing
    that runs in the student's own kernel can be trusted after it. So any cell the student wrote or
    changed (not locked, not a cell of the source notebook) that names that machinery is flagged,
    and every graded cell after it gets an error (zero) that says why; the instructor can grade by hand if it was innocent. Obfuscated
    code (names built from strings) can still hide: spot-check the autograded notebooks.
    """

    pattern = Unicode(
        r"\b(get_ipython|InteractiveShell|ipykernel|__IPYTHON__)\b|\bIPython\b(?!\.display\b)"
        r"|\.(showtraceback|showsyntaxerror|set_custom_exc|excepthook|run_cell|run_cell_async|run_code"
        r"|run_ast_nodes|input_transformers_\w+|input_transformer_manager|ast_transformers)\b",
        help="names of IPython's machinery that student code has no business touching").tag(config=True)

    def preprocess(self, nb, resources):
        source_nb = _source_notebook(self.config, resources["nbgrader"])
        instructors = {c.source for c in source_nb.cells} if source_nb else set()
        flagged = None
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            written = cell.cell_type == "code" and not meta.get("locked") and cell.source not in instructors
            if flagged is None and written:
                found = re.search(self.pattern, cell.source)
                if found:
                    flagged = f"cell {index} uses {found.group(0)!r}"
                    self.log.warning("Possible tampering in %s: %s", resources["nbgrader"]["student"], flagged)
            elif flagged is not None and _is_graded_code(cell):
                cell.outputs.append(_error(
                    "TamperingSuspected",
                    f"{flagged}, which can change how tests run or report; the tests after it score zero "
                    "(ask your instructor to grade them by hand if this was innocent)"))
        return nb, resources


class IgnoreNoise(IgnorePattern):
    """nbgrader's IgnorePattern (drop stderr outputs matching `pattern`), switched on, and also
    dropping stderr that is only whitespace: a progress bar ends with a lone newline that arrives
    as an output of its own, and nbgrader scores a test cell zero for any stderr at all."""

    enabled = Bool(True, help="Whether to use this preprocessor when running nbgrader").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.name == "stderr" and not o.text.strip())]
        return cell, resources


class LimitOutputSize(LimitOutput):
    """nbgrader's LimitOutput (lines of text, lines of traceback) plus a limit on characters, for
    output that comes in one very long line (a printed list of a million numbers)."""

    max_chars = Integer(20_000, help="maximum characters of one text output (-1: no limit)").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if self.max_chars < 0 or cell.cell_type != "code":
            return cell, resources
        for out in cell.outputs:
            holders = [(out, "text")] if out.output_type == "stream" else [(out.get("data", {}), "text/plain")]
            for holder, key in holders:
                text = holder.get(key)
                if isinstance(text, str) and len(text) > self.max_chars:
                    holder[key] = text[:self.max_chars] + "\n... Output truncated ..."
        return cell, resources


c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "edgeai"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"

# What a student sees in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding: clean the submission (restore metadata, edited tests and deleted graded cells), then
# run it and grade: nbgrader's default lists, with the classes above in place of (or added to) theirs.
c.Autograde.sanitize_preprocessors = [
    ClearOutput, RestoreReleasedMetadata, OverwriteKernelspec, RestoreMissingCells, CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    ExecuteToTheEnd, IgnoreNoise, ClearMetadataPreprocessor, LimitOutputSize, FlagTampering, SaveAutoGrades,
    AssignLatePenalties, CheckCellMetadata,
]

# Executing a notebook (validate, autograde): a cell that runs longer is interrupted and scores zero,
# and the notebook goes on. benchmarks/autograde_course.py measures the cells: autograding the whole
# course on 2 cores shared with other work, the heaviest cell took 72 s (hardware-aware evolution in
# 07_evolution; the heaviest graded cell 4 s). 300 s is over 4x that, for a slower or busy grading
# machine and slow-but-right student code: a timeout that hits correct work zeroes a whole class,
# while an endless loop costs the batch only this long per cell it hangs.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.Execute.iopub_timeout = 15  # output still arriving after the cell finished (a flood of prints)

# Feedback: long outputs are cut, and library noise on stderr (warnings, progress bars) is removed
# before grading; nbgrader would otherwise score a passing test cell zero for any stderr output.
c.LimitOutputSize.max_lines = 200
c.LimitOutputSize.max_traceback = 60
c.LimitOutputSize.max_chars = 20_000
c.IgnoreNoise.pattern = r"(?m)^.*:\d+: \w*Warning: |\d+%\||\d+it \[|it/s\]|s/it\]"  # warnings.warn, tqdm
