"""Grade one submission: the unit of work, one notebook in, one graded notebook and report out.

    python -m grading grade LESSON SUBMISSION.ipynb --out GRADED.ipynb [--course DIR]

1. stage the submission against the instructor's notebook (grading/notebooks.py);
2. run it in a fresh sandbox (grading/sandbox.py, grading/runner.py): the student's cells run,
   each test cell only records what the student's functions returned (grading/recorder.py);
3. the judge (grading/judge.py, its own sandbox, no student code) replays each test against the
   record and decides it;
4. assemble the graded notebook, sanitise what the student wrote (grading/sanitize.py), flag
   answers that delegate to a reference (grading/references.py).

`make autograde` runs this for every submission with N workers and hands the graded notebooks to
nbgrader (grading/autograde.py); a Kubernetes Job or a batch array can run it one submission per
task (docs/INSTRUCTOR_GUIDE.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from grading import notebooks, sandbox

GRADING = Path(__file__).resolve().parent            # bound read-only into every sandbox
INSIDE = "/opt/imgrec-grading"                       # where it appears there (PYTHONPATH)
MODEL_INSIDE = f"{INSIDE}/model.pt"


@dataclass
class Options:
    cell_timeout: int = 120
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    sandboxed: bool = True
    model: Path | None = None          # the instructor's checkpoint lessons look for (lesson 08)
    zero_reference_copies: bool = False


@dataclass
class Graded:
    notebook: object | None            # the graded notebook, or None when it could not be graded
    report: dict


class Judge:
    """The judge process of one worker, started once and restarted if it dies or hangs."""

    TIMEOUT = 300

    def __init__(self, options: Options):
        self.options, self.service, self.lock = options, None, threading.Lock()
        self._start()  # now: it imports torch while the first sandbox runs

    def _start(self):
        env = sandbox.sandbox_env(self.options.limits)
        command = [sys.executable, "-m", "grading.judge"]
        if not self.options.sandboxed:
            env["PYTHONPATH"] = str(GRADING.parent)
        self.service = sandbox.Service(command, {str(GRADING): f"{INSIDE}/grading"}, env,
                                       self.options.limits, sandboxed=self.options.sandboxed)

    def verdicts(self, cells: list) -> dict:
        with self.lock:
            if self.service is None or self.service.process.poll() is not None:
                self._start()
            reply = self.service.ask(json.dumps({"cells": cells}).encode(), self.TIMEOUT)
            if reply is None:
                self.close()
                return {}
            answer = json.loads(reply)
            if "error" in answer:
                raise RuntimeError(f"the judge failed: {answer['error']}")
            return answer["verdicts"]

    def close(self):
        if self.service is not None:
            self.service.close()
            self.service = None


def _events(stdout: bytes) -> tuple[dict[int, list], dict[str, dict], str]:
    """(outputs by cell index, records by test, how the run ended) from the sandbox's stream."""
    outputs, records, done = {}, {}, ""
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if isinstance(event.get("cell"), int) and isinstance(event.get("outputs"), list):
            outputs[event["cell"]] = event["outputs"]
        elif isinstance(event.get("record"), dict) and isinstance(event["record"].get("test"), str):
            records.setdefault(event["record"]["test"], event["record"])  # the first one counts
        elif "done" in event:
            done = str(event["done"])[:200] + (f": {str(event.get('detail'))[:300]}" if event.get("detail") else "")
    return outputs, records, done


def exercises_of_tests(source) -> dict[str, str]:
    """{test grade_id: answer grade_id}: a test belongs to the answer cell before it."""
    owner, answer = {}, None
    for cell in source.cells:
        meta = notebooks.nbgrader_meta(cell)
        if meta.get("solution") and notebooks.grade_id(cell):
            answer = notebooks.grade_id(cell)
        elif notebooks.is_test_cell(cell) and answer:
            owner[notebooks.grade_id(cell)] = answer
    return owner


def run_in_sandbox(run_nb, options: Options) -> sandbox.Result:
    """Step 2: execute the notebook to run in a fresh sandbox; its event stream comes back."""
    env = sandbox.sandbox_env(options.limits, {"IMGREC_CELL_TIMEOUT": str(options.cell_timeout),
                                               "IMGREC_RECORDS": "/tmp/records"})
    binds = {str(GRADING): f"{INSIDE}/grading"}
    if options.model is not None:
        binds[str(options.model.resolve())] = MODEL_INSIDE
        env["IMGREC_MODEL"] = MODEL_INSIDE
    with tempfile.TemporaryDirectory(prefix="imgrec-unsafe-") as scratch:
        if not options.sandboxed:  # the same run, in a scratch folder, with the grader's permissions
            env.update(HOME=scratch, TMPDIR=scratch, IPYTHONDIR=f"{scratch}/.ipython", PYTHONPATH=str(GRADING.parent),
                       JUPYTER_RUNTIME_DIR=f"{scratch}/runtime", MPLCONFIGDIR=f"{scratch}/matplotlib",
                       IMGREC_RECORDS=f"{scratch}/records")
            if options.model is not None:
                env["IMGREC_MODEL"] = str(options.model.resolve())
        return sandbox.run([sys.executable, "-m", "grading.runner"], json.dumps(run_nb).encode(), binds, env,
                           options.limits, sandboxed=options.sandboxed)


def why_stopped(result: sandbox.Result, done: str, options: Options) -> str:
    why = {"wall time": f"the notebook ran past its time limit of {options.limits.wall_seconds:g} s",
           "output limit": f"the notebook's output passed the limit of {options.limits.output_bytes:,} bytes"}.get(
        result.ended, done if done and done != "ok" else "")
    if not done and not why:
        why = f"the notebook stopped (exit status {result.returncode}; the memory limit, or it ended itself)"
    return why


def finish(submission, staged, source, release, events: bytes, result: sandbox.Result | None, judge: Judge,
           options: Options, report: dict) -> object:
    """Step 3, where no student code runs: the judge's verdicts, reference copies, the graded notebook.
    `result`: the sandbox's run, when it ran here (its limits say why a notebook stopped)."""
    outputs, records, done = _events(events)
    if result is not None:
        why = why_stopped(result, done, options)
    else:
        why = done if done and done != "ok" else "" if done else "the notebook did not finish"
    if why:
        report["notes"].append(why)
    tests = notebooks.test_sources(source)
    cells = [[gid, code, records.get(gid), why] for gid, code in tests.items()]
    verdicts = judge.verdicts(cells) if cells else {}
    if cells and not verdicts:
        report["notes"].append("the judge could not check this notebook's results (too large, or too slow)")

    from grading import references  # noqa: PLC0415
    flags = references.find_reference_copies(submission, release) if release is not None else {}
    if flags:
        report["reference_copies"] = flags
        if options.zero_reference_copies:
            owner = exercises_of_tests(source)
            for gid in tests:
                if owner.get(gid) in flags and gid in verdicts:
                    reason = "; ".join(flags[owner[gid]])
                    verdicts[gid] = {"passed": False, "outputs": [{
                        "output_type": "error", "ename": "ReferenceCopy", "evalue": reason,
                        "traceback": [f"ReferenceCopy: scored 0 because the answer delegates to a reference: {reason}"]}]}

    graded = notebooks.assemble(staged, outputs, verdicts)
    from grading.sanitize import sanitize_notebook  # noqa: PLC0415
    trusted = {c.source for c in (release or source).cells if c.cell_type in ("markdown", "raw")}
    report.update(passed=sorted(g for g, v in verdicts.items() if v.get("passed")),
                  failed=sorted(g for g in tests if not verdicts.get(g, {}).get("passed")))
    return sanitize_notebook(graded, trusted)


def grade(submission_path: Path, source, release, judge: Judge, options: Options) -> Graded:
    """Grade one submitted notebook against the instructor's `source` (and the student `release`):
    stage it, run it in a sandbox, and finish where no student code runs."""
    started = time.monotonic()
    try:
        submission = notebooks.read_submission(submission_path)
    except (notebooks.BadSubmission, OSError) as error:
        return Graded(None, {"not_graded": f"{submission_path}: {error}"})
    staged = notebooks.stage(submission, source)
    run_nb = notebooks.to_run(staged)
    result = run_in_sandbox(run_nb, options)
    report: dict = {"notes": []}
    graded = finish(submission, staged, source, release, result.stdout, result, judge, options, report)
    report.update(seconds=round(time.monotonic() - started, 2), sandbox_seconds=round(result.seconds, 2))
    return Graded(graded, report)


def main(argv: list[str] | None = None) -> int:
    """`python -m grading grade`: one submission in, one graded notebook (+ report JSON) out."""
    import argparse

    import nbformat

    parser = argparse.ArgumentParser(prog="python -m grading grade", description=main.__doc__)
    parser.add_argument("lesson", help="the lesson folder name, e.g. 01_convolution")
    parser.add_argument("submission", type=Path, help="the submitted .ipynb")
    parser.add_argument("--out", type=Path, required=True, help="where to write the graded notebook")
    parser.add_argument("--course", type=Path, default=Path("."), help="the course folder (with solutions/)")
    parser.add_argument("--notebook", help="the lesson's notebook the submission is (default: LESSON.ipynb)")
    parser.add_argument("--model", type=Path, help="the instructor's checkpoint (default: checkpoints/course_cnn.pt if present)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    parser.add_argument("--unsafe-no-sandbox", action="store_true", help="run the student's code unsandboxed")
    parser.add_argument("--write-run", type=Path, metavar="FILE",
                        help="only stage the submission and write the notebook to run to FILE (step 1 of a Job)")
    parser.add_argument("--from-events", type=Path, metavar="FILE",
                        help="do not run anything: finish from the event stream that `python -m grading.runner "
                             "< FILE_FROM_--write-run` printed in an isolated container (step 3 of a Job)")
    args = parser.parse_args(argv)
    name = args.notebook or f"{args.lesson}.ipynb"
    source = nbformat.read(args.course / "solutions" / args.lesson / name, as_version=4)
    release_path = args.course / "lessons" / args.lesson / name
    release = nbformat.read(release_path, as_version=4) if release_path.exists() else None
    model = args.model or (args.course / "checkpoints" / "course_cnn.pt")
    options = Options(cell_timeout=args.timeout, sandboxed=not args.unsafe_no_sandbox,
                      model=model if model.exists() else None)
    if args.write_run:
        staged = notebooks.stage(notebooks.read_submission(args.submission), source)
        args.write_run.write_text(json.dumps(notebooks.to_run(staged)))
        return 0
    if args.from_events:  # the run happened elsewhere: its stream is data, read up to the limit
        with args.from_events.open("rb") as file:
            events = file.read(options.limits.output_bytes)
        submission = notebooks.read_submission(args.submission)
        staged = notebooks.stage(submission, source)  # made again here: nothing of the run's is trusted
        judge, report = Judge(options), {"notes": []}
        try:
            graded = Graded(finish(submission, staged, source, release, events, None, judge, options, report), report)
        finally:
            judge.close()
    else:
        if options.sandboxed:
            sandbox.check()
        judge = Judge(options)
        try:
            graded = grade(args.submission, source, release, judge, options)
        finally:
            judge.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if graded.notebook is not None:
        nbformat.write(graded.notebook, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(graded.report, indent=1))
    print(json.dumps(graded.report))
    return 0 if graded.notebook is not None else 1

