"""From a submitted notebook to the notebook that runs in the sandbox, and back to the graded one.

- `stage`: the submission rebuilt against the instructor's source notebook. The student's cells
  stay in their order; the graded and locked cells are the instructor's (hidden tests included),
  each exactly once, with the instructor's nbgrader metadata; a graded cell the student deleted is
  put back; nbgrader metadata the student added, duplicated or flipped is dropped. Nothing else of
  the submission travels (no notebook metadata, no outputs, no other files).
- `to_run`: the staged notebook with each test cell replaced by a call of grading/serve.py that
  holds only the cell's probes: the test function stays with the judge.
- `assemble`: the staged notebook with the sandbox's outputs in the student's cells and the
  judge's outputs in the test cells.
- `answer_errors`, `mark_answer_errors`: an answer cell that raised, said first in each test of its
  exercise that fails (`make autograde`'s feedback and `make check` alike).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import secrets
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell


MAX_NOTEBOOK_BYTES = 50 * 2**20
MISSING_ANSWER = "# This answer cell was missing from the submission.\nraise NotImplementedError()\n"


class NotGradable(Exception):
    """A test cell that does not have the shape the grader needs (a course error, not the student's)."""


def split_test_cell(source: str) -> tuple[str, str, list[tuple[str, bool]], str]:
    """(code before the last statement, the test function's name, [(argument source, is a bare
    name)], what follows the last statement) of a test cell that ends with `test_x(a, probe(b))`."""
    tree = ast.parse(source)
    last = tree.body[-1] if tree.body else None
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) and not last.value.keywords
            and isinstance(last.value.func, ast.Name) and last.value.func.id in defined):
        raise NotGradable("a graded test cell must end with a call `test_x(argument, ...)` of a test function "
                          "defined in the cell")
    lines = source.splitlines(keepends=True)
    before = "".join(lines[: last.lineno - 1])
    after = "".join(lines[last.end_lineno:])
    arguments = [(ast.get_source_segment(source, a), isinstance(a, ast.Name)) for a in last.value.args]
    return before, last.value.func.id, arguments, after


class BadSubmission(ValueError):
    """A file that cannot be graded: not a notebook, too large, not UTF-8."""


def nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    value = nbgrader_meta(cell).get("grade_id")
    return value if isinstance(value, str) else None


def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def read_submission(path: Path) -> nbformat.NotebookNode:
    """The submitted notebook, or BadSubmission saying why it cannot be graded."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise BadSubmission(f"{size:,} bytes, over the limit of {MAX_NOTEBOOK_BYTES:,}")
    try:
        text = path.read_bytes().decode("utf-8")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except UnicodeDecodeError as error:
        raise BadSubmission(f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except Exception as error:  # bad JSON, not a notebook, an unknown format version ...
        raise BadSubmission(f"not a valid notebook ({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
    return nb


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value if isinstance(value, str) else ""


def _plain_cell(cell):
    """A student's cell as plain text of the same kind, without nbgrader metadata or outputs."""
    source = _text(cell.get("source", ""))
    if cell.cell_type == "code":
        return new_code_cell(source)
    if cell.cell_type == "markdown":
        new = new_markdown_cell(source)
        if isinstance(cell.get("attachments"), dict):
            new["attachments"] = copy.deepcopy(cell["attachments"])
        return new
    return new_raw_cell(source)


def stage(submission: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The submission rebuilt against the instructor's `source` (see the module docstring)."""
    known = {grade_id(c): c for c in source.cells if grade_id(c)}
    cells, placed = [], {}
    for cell in submission.cells:
        gid = grade_id(cell)
        ref = known.get(gid)
        if ref is not None and gid not in placed and cell.cell_type == ref.cell_type:
            if nbgrader_meta(ref).get("locked") or is_test_cell(ref):
                new = copy.deepcopy(ref)
                new.pop("outputs", None)
                if new.cell_type == "code":
                    new.outputs, new.execution_count = [], None
            else:  # the student's answer, with the instructor's metadata
                new = _plain_cell(cell)
                new.metadata["nbgrader"] = copy.deepcopy(nbgrader_meta(ref))
            placed[gid] = new
        else:
            new = _plain_cell(cell)
        cells.append(new)
    # Put back what was deleted, after the nearest graded cell before it in the source.
    previous = None
    for ref in source.cells:
        gid = grade_id(ref)
        if not gid:
            continue
        if gid not in placed:
            if nbgrader_meta(ref).get("locked") or is_test_cell(ref):
                new = copy.deepcopy(ref)
                if new.cell_type == "code":
                    new.outputs, new.execution_count = [], None
            else:
                new = new_code_cell(MISSING_ANSWER) if ref.cell_type == "code" else new_markdown_cell("")
                new.metadata["nbgrader"] = copy.deepcopy(nbgrader_meta(ref))
            at = cells.index(placed[previous]) + 1 if previous else 0
            cells.insert(at, new)
            placed[gid] = new
        previous = gid
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
        cell.metadata.pop("execution", None)
    nb = new_notebook(cells=cells)
    for key in ("kernelspec", "language_info"):
        if key in source.metadata:
            nb.metadata[key] = copy.deepcopy(source.metadata[key])
    return nb


def probes_of(before: str, arguments: list[tuple[str, bool]]) -> str:
    """The part of a test cell that runs in the student's kernel: the top-level imports and the
    functions called in the test call's arguments (its probes). Never the test function."""
    tree = ast.parse(before)
    called = {node.func.id for source, _ in arguments for node in ast.walk(ast.parse(source, mode="eval"))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    keep = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
            or isinstance(node, ast.FunctionDef) and node.name in called]
    return "\n\n".join(ast.get_source_segment(before, node, padded=True) for node in keep) + "\n"


def to_run(staged: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, dict[str, str]]:
    """The staged notebook with each test cell turned into a call of grading/serve.py, and {grade_id:
    token}: a fresh random word per test cell that only that cell's source holds, which the grader
    asks of the serve (grading/worker.Run). The call names serve through its module, not a global
    name of the notebook's."""
    import grading

    nb, tokens = copy.deepcopy(staged), {}
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.source.strip():
            cell.source = "pass"  # the kernel numbers only the cells it runs: run every one (see `assemble`)
        if is_test_cell(cell):
            with grading.PARSING:  # one thread at a time (see grading/__init__.py)
                before, _, arguments, _ = split_test_cell(cell.source)
                probes = probes_of(before, arguments)
            token = tokens[grade_id(cell)] = secrets.token_hex(16)
            cell.source = (f"__import__('grading.serve').serve.serve({grade_id(cell)!r}, {probes!r}, {arguments!r}, "
                           f"globals(), {token!r})\n")
    return nb, tokens


def test_sources(source: nbformat.NotebookNode) -> dict[str, str]:
    """{grade_id: cell source} of the instructor's test cells."""
    return {grade_id(c): c.source for c in source.cells if is_test_cell(c)}


def assemble(staged: nbformat.NotebookNode, outputs: dict[int, list], verdicts: dict[str, dict]) -> nbformat.NotebookNode:
    """The graded notebook: sandbox outputs in the student's code cells, verdicts in the test cells.
    Code cell N shows "In [N]:" on the feedback page: the number a traceback gives ("Cell In[N]", as
    `to_run` has the kernel run every code cell) and a note names ("code cell N")."""
    nb = copy.deepcopy(staged)
    budget = MAX_OUTPUTS
    number = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        number += 1
        cell.execution_count = number
        if is_test_cell(cell):
            verdict = verdicts.get(grade_id(cell)) or {"outputs": [{
                "output_type": "error", "ename": "NotGraded", "evalue": "this test was not checked",
                "traceback": ["NotGraded: this test was not checked"]}]}
            cell.outputs = [nbformat.from_dict(o) for o in verdict["outputs"]]
        else:
            reported = outputs.get(i, [])
            reported = reported[: min(MAX_OUTPUTS_PER_CELL, budget)] if isinstance(reported, list) else []
            budget -= len(reported)
            cell.outputs = [nbformat.from_dict(o) for o in _valid_outputs(reported)]
    return nb


_OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error"}
MAX_OUTPUTS_PER_CELL, MAX_OUTPUTS = 100, 1000  # outputs kept (Jupyter already merges a cell's printing into one)


def _valid_outputs(outputs) -> list[dict]:
    """The outputs of a cell as the sandbox reported them, keeping only well-formed ones."""
    kept = []
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, dict) or output.get("output_type") not in _OUTPUT_TYPES:
            continue
        try:
            node = nbformat.from_dict(json.loads(json.dumps(output)))
            nbformat.validate(new_notebook(cells=[new_code_cell("", outputs=[node])]))
        except Exception:  # noqa: BLE001 - a malformed output is dropped, not trusted
            continue
        kept.append(node)
    return kept


# ---- an answer cell that raised -----------------------------------------------------------------


def exercises_of_tests(source) -> dict[str, str]:
    """{test grade_id: answer grade_id}: a test belongs to the answer cell before it."""
    owner, answer = {}, None
    for cell in source.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution") and grade_id(cell):
            answer = grade_id(cell)
        elif is_test_cell(cell) and answer:
            owner[grade_id(cell)] = answer
    return owner


def reason(evalue: str, limit: int = 400) -> str:
    """The first line of a test's message, shortened to about `limit` characters if long, keeping its
    "that is ..." clause, which names the mistake, whole: after a long array, or an array printed on
    several lines, it would be cut off."""
    text = evalue.strip()
    first = text.splitlines()[0] if text else ""
    match = re.search(r"([;.]\s*)?\b(that is|it matches a classic mistake) .*", text, re.IGNORECASE)  # to the line's end
    if match is None:
        return first if len(first) <= limit else first[:limit].rstrip() + " ..."
    clause, inside = match.group(0), match.start() < len(first)
    head = first[: match.start()] if inside else first
    room = max(limit - len(clause), limit // 2)
    if inside and len(head) <= room:
        return first
    return f"{head[:room].rstrip()} ... {clause.lstrip('; .')}"


def answer_errors(graded) -> dict[str, str]:
    """{exercise: "your answer cell for EXERCISE raised ename: evalue"} for each answer cell of the
    graded notebook that raised or was stopped at its time limit (an answer not yet written, a bare
    NotImplementedError, is left out): the tests of that exercise fail because of it, whatever their
    own message says. The cell is named by its exercise, the one thing a learner can find it by in
    JupyterLab (which numbers cells by the learner's own runs)."""
    found = {}
    for cell in graded.cells:
        meta = nbgrader_meta(cell)
        exercise = grade_id(cell)
        if cell.cell_type != "code" or not meta.get("solution") or is_test_cell(cell) or not exercise:
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                ename, evalue = str(output.get("ename", "")), str(output.get("evalue", "")).strip()
                said = f"your answer cell for {exercise}"
                if ename == "KeyboardInterrupt":  # nbclient interrupts a cell at its time limit
                    found[exercise] = f"{said} was stopped at the time limit of a cell"
                elif not (ename == "NotImplementedError" and not evalue):
                    found[exercise] = f"{said} raised {ename}: {reason(evalue, 300)}" if evalue else f"{said} raised {ename}"
                break
    return found


def mark_answer_errors(source, graded) -> None:
    """On the feedback page: each failing test of an exercise whose answer cell raised starts with a
    line saying so (the graded notebook is changed in place)."""
    raised, owner = answer_errors(graded), exercises_of_tests(source)
    for cell in graded.cells:
        exercise = owner.get(grade_id(cell)) if is_test_cell(cell) else None
        if exercise in raised and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            cell.outputs.insert(0, nbformat.v4.new_output(
                "stream", name="stderr", text=f"{raised[exercise]}; this test fails because of it\n"))
