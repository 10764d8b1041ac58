"""Grade one submission: the unit of work, one notebook in, one graded notebook and report out.

    python -m grading grade LESSON SUBMISSION.ipynb --out GRADED.ipynb [--course DIR]

1. stage the submission against the instructor's notebook (grading/notebooks.py);
2. run it in a fresh sandbox (grading/sandbox.py, grading/runner.py): the student's cells run;
   when a test cell comes, the judge (grading/judge.py, its own sandbox, no student code) runs the
   test and decides it, and each call it makes to a student's function is relayed to the kernel
   and back as data (grading/serve.py);
4. assemble the graded notebook, start each failing test of an exercise whose answer cell raised
   with a line saying so, sanitise what the student wrote (grading/sanitize.py), flag answers that
   delegate to a reference (grading/references.py: read from the notebook, and from what the kernel
   recorded that the student's code called while each test cell ran, grading/recorder.py).

`make autograde` runs this for every submission with N workers and hands the graded notebooks to
nbgrader (grading/autograde.py); a Kubernetes Job or a batch array can run it one submission per
task (docs/INSTRUCTOR_GUIDE.md): there the runner is started in a separate container and the worker
talks to it over a Unix socket (`--runner-socket`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from grading import KERNEL, notebooks, sandbox

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
        self._start()  # now: it imports torch while the caller gets the first submission ready

    def _start(self):
        env = sandbox.sandbox_env(self.options.limits)
        command = [sys.executable, "-m", "grading.judge"]
        if not self.options.sandboxed:
            env["PYTHONPATH"] = str(GRADING.parent)
        self.service = sandbox.Service(command, {str(GRADING): f"{INSIDE}/grading"}, env,
                                       self.options.limits, sandboxed=self.options.sandboxed)
        self.ready = False

    def wait_until_ready(self) -> None:
        """Block until the judge has started (it says so once its imports are done), so that a
        notebook's first test cell does not spend its time limit waiting for it."""
        with self.lock:
            if self.service is None or self.service.process.poll() is not None:
                self._start()
            if not self.ready:
                line = self.service.read_line(self.TIMEOUT)
                if line is None or "ready" not in json.loads(line):
                    self.close()
                    raise RuntimeError("the judge did not start (see `python -m grading.judge`)")
                self.ready = True

    def run_test(self, grade_id: str, source: str, arguments, call) -> dict | None:
        """The verdict on one test cell; `call(message)` relays a call of a student's function to
        the kernel and returns its reply. None if the judge did not answer in time."""
        self.wait_until_ready()
        with self.lock:
            try:
                verdict = self._converse(grade_id, source, arguments, call)
            except BaseException:
                self.close()  # never leave the judge in the middle of a test: the next one would be off by one
                raise
            if verdict is None:
                self.close()
            return verdict

    def _converse(self, grade_id: str, source: str, arguments, call) -> dict | None:
        request = {"test": grade_id, "source": source, "arguments": arguments}
        if not self.service.send(json.dumps(request).encode()):
            return None
        while (line := self.service.read_line(self.TIMEOUT)) is not None:
            message = json.loads(line)
            if "call" in message:
                if not self.service.send(json.dumps({"reply": call(message["call"])}).encode()):
                    return None
            elif "verdict" in message and message.get("test") == grade_id:
                return message["verdict"]
            elif "error" in message:
                raise RuntimeError(f"the judge failed: {message.get('error')}")
            else:
                return None
        return None

    def close(self):
        if self.service is not None:
            self.service.close()
            self.service = None


def failed(message: str) -> dict:
    """The verdict on a test cell that could not be checked."""
    return {"passed": False, "outputs": [{"output_type": "error", "ename": "RuntimeError", "evalue": message,
                                          "traceback": [f"RuntimeError: {message}"]}]}


MAX_USED = 400  # names of what the student's code called, kept per test cell
MAX_ITEMS_IN_LINE = 1_000_000  # JSON items in one event: results and outputs are mostly base64 and text
MAX_ITEMS_OF_OUTPUTS = 4_000_000  # JSON items of all the cells' outputs kept (about a gigabyte past this)


def items(line: bytes) -> int:
    """About how many JSON objects, lists and values a line holds, counted without parsing it."""
    return sum(line.count(token) for token in (b"[", b"{", b",", b":"))


class Run:
    """A submission's notebook running in its sandbox, talked to in JSON lines (`channel`: send,
    next_line): its cells' outputs come in, and each test cell it reaches is decided by the judge
    while the kernel answers the test's calls. Whatever the sandbox sends is data: a malformed or
    unexpected line is skipped, and a call it does not answer fails that test.

    Two senders share the channel: grading/runner.py (a cell's outputs, the end), which the student's
    code cannot reach, and the kernel, where the student's code runs (a test cell's serve and its
    replies), whose lines the runner marks. A serve is taken only from the kernel, once per test
    cell, and only right after a hello with the token that `tokens` holds for it: a random word that
    only that test cell's source (grading/notebooks.to_run) carries into the kernel, as the cell
    starts, and that grading/serve.py sends before any code of the student's runs there. So a cell of
    the student's cannot serve a test in its place, unless code of theirs runs inside the test cell
    before the hello (an IPython hook or transformer, a signal handler, a finalizer, a thread, a
    notebook's own `__import__` or `globals`): the kernel cannot keep a secret from code running in it,
    and grading/references.py flags all of those for review. Outputs and the end come only from the runner."""

    def __init__(self, channel, tests: dict[str, str], judge: Judge, tokens: dict[str, str] | None = None):
        self.channel, self.tests, self.judge, self.tokens = channel, tests, judge, tokens or {}
        self.outputs: dict[int, list] = {}
        self.output_items: dict[int, int] = {}       # JSON items of each cell's kept outputs
        self.items_kept = 0                          # their sum
        self.verdicts: dict[str, dict] = {}
        self.used: dict[str, dict[str, None]] = {}   # test grade_id -> what the student's code called there
        self.refused: list[str] = []                 # serves refused: a test cell's name without its token
        self.done, self.serving, self.current, self.opened = "", False, None, None

    def _events(self):
        """(from the kernel?, event) for each line that parses into a JSON object."""
        while (line := self.channel.next_line()) is not None:
            from_kernel = line.startswith(KERNEL)
            if from_kernel:
                line = line[len(KERNEL):]
            count = items(line)
            if count > MAX_ITEMS_IN_LINE:
                continue  # not parsed: its millions of little objects would take gigabytes
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict):
                event["__items"] = count
                yield from_kernel, event

    def go(self, notebook: dict) -> None:
        self.channel.send(json.dumps(notebook).encode() + b"\n")
        self.stream = self._events()
        for from_kernel, event in self.stream:
            self._take(event, from_kernel)
            if self.done:
                return  # the runner's last word: nothing that comes after it is read

    def _take(self, event: dict, from_kernel: bool) -> None:
        if from_kernel:
            self._serve(event)
        elif isinstance(event.get("cell"), int) and isinstance(event.get("outputs"), list):
            self._keep_outputs(event["cell"], event["outputs"], event["__items"])
        elif "done" in event:
            self.done = str(event["done"])[:200] + (f": {str(event.get('detail'))[:300]}" if event.get("detail") else "")

    def _keep_outputs(self, cell: int, outputs: list, count: int) -> None:
        """Keep a cell's outputs while all that is kept stays under MAX_ITEMS_OF_OUTPUTS JSON items."""
        kept = self.items_kept - self.output_items.get(cell, 0)
        if kept + count > MAX_ITEMS_OF_OUTPUTS:
            outputs, count = [{"output_type": "stream", "name": "stderr",
                               "text": "(this cell's outputs were left out: the notebook's outputs are too large)\n"}], 0
        self.outputs[cell], self.output_items[cell], self.items_kept = outputs, count, kept + count

    def _serve(self, event: dict) -> None:
        if isinstance(event.get("hello"), str) and not self.serving:
            grade_id, self.opened = event["hello"], None
            if grade_id in self.verdicts:
                return
            if self.tokens.get(grade_id) is not None and event.get("token") == self.tokens[grade_id]:
                self.opened = grade_id
            else:
                self._refuse(grade_id)
            return
        grade_id = event.get("serve")
        if not isinstance(grade_id, str) or self.serving:
            return  # a reply or an end that came after its test: nothing to do
        opened, self.opened = self.opened, None
        if grade_id not in self.tests or grade_id in self.verdicts:
            pass
        elif grade_id != opened:
            self._refuse(grade_id)
        else:
            self.serving, self.current = True, grade_id
            self._note_used(event.get("used"))
            verdict = self.judge.run_test(grade_id, self.tests[grade_id], event.get("arguments"), self._call)
            self.verdicts[grade_id] = verdict or failed(
                "the grader could not check this test in time (a result too large, or too slow to check)")
        self.serving = False
        self.channel.send(b'{"end": true}\n')

    def _refuse(self, grade_id: str) -> None:
        """Note a hello or serve refused, by the test's name if it is one of the notebook's (the name is
        the student's text: it goes to the instructor's report only when it is a test's)."""
        if len(self.refused) < MAX_USED:
            self.refused.append(grade_id if grade_id in self.tests else "(a name that is no test's)")

    def _note_used(self, names) -> None:
        """Keep what the kernel says the student's code called (grading/recorder.py), as bounded text:
        like everything from the sandbox it is only a claim, read by references.runtime_findings."""
        if self.current is None or not isinstance(names, list):
            return
        kept = self.used.setdefault(self.current, {})
        for name in names[:MAX_USED]:
            if isinstance(name, str) and len(kept) < MAX_USED:
                kept["".join(c if c.isprintable() else "?" for c in name[:200])] = None

    def _call(self, call: dict):
        """Send one call to the kernel; its reply, or None once the kernel has stopped serving."""
        if not self.serving or not self.channel.send(json.dumps({"call": call}).encode() + b"\n"):
            return None
        for from_kernel, event in self.stream:
            if from_kernel and "reply" in event:
                if not isinstance(event["reply"], dict):
                    return None
                self._note_used(event["reply"].pop("used", None))
                return event["reply"]
            self.serving = False  # anything else: the test cell ended (its time limit, a dead kernel)
            if not from_kernel:
                self._take(event, from_kernel)
            return None
        self.serving = False
        return None


def runner_env(options: Options, scratch: str) -> tuple[dict[str, str], dict[str, str]]:
    """(binds, environment) of the sandbox that runs a notebook; unsandboxed, the same run with the
    grader's permissions in the folder `scratch`."""
    env = sandbox.sandbox_env(options.limits, {"IMGREC_CELL_TIMEOUT": str(options.cell_timeout)})
    binds = {str(GRADING): f"{INSIDE}/grading"}
    if options.model is not None:
        binds[str(options.model.resolve())] = MODEL_INSIDE
        env["IMGREC_MODEL"] = MODEL_INSIDE
    if not options.sandboxed:
        env.update(HOME=scratch, TMPDIR=scratch, IPYTHONDIR=f"{scratch}/.ipython", PYTHONPATH=str(GRADING.parent),
                   JUPYTER_RUNTIME_DIR=f"{scratch}/runtime", MPLCONFIGDIR=f"{scratch}/matplotlib",
                   IMGREC_SERVE_SOCKET=f"{scratch}/serve.sock")
        if options.model is not None:
            env["IMGREC_MODEL"] = str(options.model.resolve())
    return binds, env


def check_course_python(options: Options) -> None:
    """Raise CoursePythonBroken, saying what to do, unless the Python that runs the notebooks starts
    where they are graded and imports the course (imgrec_lib, the grading runner, the kernel). Else
    every notebook would fail for the grader's fault, not the student's, and be scored 0. torch is
    left to the judge, whose first import it is (~2 s saved here): a judge that cannot start grades
    nothing, and each submission it was to judge is reported not graded."""
    with tempfile.TemporaryDirectory(prefix="imgrec-check-") as scratch:
        binds, env = runner_env(options, scratch)
        try:
            result = sandbox.run([sys.executable, "-c", "import imgrec_lib, grading.runner, ipykernel.kernelapp; print('ok')"], b"",
                                 binds, env, sandbox.Limits(wall_seconds=300, output_bytes=10_000),
                                 sandboxed=options.sandboxed)
        except OSError as error:
            result = sandbox.Result(b"", str(error), 0.0, returncode=None)
    if result.stdout.strip() != b"ok":
        where = "in its sandbox" if options.sandboxed else "here"
        raise CoursePythonBroken(
            f"the course's Python ({sys.executable}) cannot run the notebooks {where}, so nothing was graded:\n"
            f"{result.stderr_tail.strip()[-1500:] or f'it ended with exit status {result.returncode}'}\n"
            "Grade with the course's own environment: `make install` in the course folder (it rebuilds a "
            ".venv that was moved or whose imgrec_lib is gone), then `make autograde`.")


class CoursePythonBroken(RuntimeError):
    pass


def run_and_judge(run_nb, tests: dict[str, str], tokens: dict[str, str], judge: Judge,
                  options: Options) -> tuple[Run, sandbox.Result]:
    """Step 2: execute the notebook in a fresh sandbox, the judge deciding each test cell on the way."""
    judge.wait_until_ready()
    with tempfile.TemporaryDirectory(prefix="imgrec-unsafe-") as scratch:
        binds, env = runner_env(options, scratch)
        session = sandbox.Session([sys.executable, "-m", "grading.runner"], binds, env, options.limits,
                                  sandboxed=options.sandboxed)
        run = Run(session, tests, judge, tokens)
        try:
            run.go(run_nb)
        finally:
            # Said all: end it now. Without a sandbox the kernel has a session of its own, out of reach of
            # the kill: there the runner, which goes on to shut the kernel down, is waited for.
            result = session.close(at_once=bool(run.done) and options.sandboxed)
    return run, result


def why_stopped(result: sandbox.Result, done: str, options: Options) -> str:
    why = {"wall time": f"the notebook ran past its time limit of {options.limits.wall_seconds:g} s",
           "output limit": f"the notebook's output passed the limit of {options.limits.output_bytes:,} bytes"}.get(
        result.ended, done if done and done != "ok" else "")
    if not done and not why:
        why = f"the notebook stopped (exit status {result.returncode}; the memory limit, or it ended itself)"
    return why


def finish(submission, staged, source, release, run: Run, why: str, options: Options, report: dict) -> object:
    """Step 3, where no student code runs: reference copies, the graded notebook."""
    if why:
        report["notes"].append(why)
    tests = notebooks.test_sources(source)
    verdicts = {gid: run.verdicts.get(gid) or failed(f"this test did not run in your notebook: "
                                                    f"{why or 'it stopped before this cell'}") for gid in tests}
    from grading import references  # noqa: PLC0415
    flags = references.find_reference_copies(submission, release) if release is not None else {}
    owner = notebooks.exercises_of_tests(source)
    for exercise, reasons in references.runtime_findings(
            {gid: list(names) for gid, names in run.used.items()}, owner).items():
        flags.setdefault(exercise, []).extend(reasons)
    for gid in dict.fromkeys(run.refused):
        if gid in owner:
            flags.setdefault(owner[gid], []).append(
                f"code of the notebook tried to answer the test {gid} in the test cell's place (a serve without the "
                "test cell's token, refused): review by hand")
        else:
            report["notes"].append("code of the notebook tried to answer a test that is not the notebook's (refused): "
                                   "review by hand")
    if flags:
        report["reference_copies"] = flags
        if options.zero_reference_copies:
            for gid in tests:
                if owner.get(gid) in flags:
                    reason = "; ".join(flags[owner[gid]])
                    verdicts[gid] = {"passed": False, "outputs": [{
                        "output_type": "error", "ename": "ReferenceCopy", "evalue": reason,
                        "traceback": [f"ReferenceCopy: scored 0 because the answer delegates to a reference: {reason}"]}]}

    graded = notebooks.assemble(staged, run.outputs, verdicts)
    notebooks.mark_answer_errors(source, graded)  # before sanitising: the error text is the student's
    from grading.sanitize import sanitize_notebook  # noqa: PLC0415
    trusted = {c.source for c in (release or source).cells if c.cell_type in ("markdown", "raw")}
    report.update(passed=sorted(g for g, v in verdicts.items() if v.get("passed")),
                  failed=sorted(g for g in tests if not verdicts[g].get("passed")))
    return sanitize_notebook(graded, trusted)


def grade(submission_path: Path, source, release, judge: Judge, options: Options,
          runner_socket: Path | None = None) -> Graded:
    """Grade one submitted notebook against the instructor's `source` (and the student `release`):
    stage it, run it in a sandbox with the judge deciding its tests, and finish where no student
    code runs. `runner_socket`: the runner was started elsewhere (a Job's isolated container) and
    listens there."""
    started = time.monotonic()
    try:
        submission = notebooks.read_submission(submission_path)
    except (notebooks.BadSubmission, OSError) as error:
        return Graded(None, {"not_graded": f"{submission_path}: {error}"})
    staged = notebooks.stage(submission, source)
    (run_nb, tokens), tests = notebooks.to_run(staged), notebooks.test_sources(source)
    if runner_socket is None:
        run, result = run_and_judge(run_nb, tests, tokens, judge, options)
    else:
        judge.wait_until_ready()
        connection = sandbox.Connection(runner_socket, options.limits)
        run = Run(connection, tests, judge, tokens)
        try:
            run.go(run_nb)
        finally:
            result = connection.close()
    why = why_stopped(result, run.done, options)
    report: dict = {"notes": []}
    graded = finish(submission, staged, source, release, run, why, options, report)
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
    parser.add_argument("--runner-socket", type=Path, metavar="PATH",
                        help="do not start a sandbox: the runner (`python -m grading.runner --listen PATH`) was "
                             "started in an isolated container and listens at PATH (a Kubernetes Job)")
    args = parser.parse_args(argv)
    name = args.notebook or f"{args.lesson}.ipynb"
    source = nbformat.read(args.course / "solutions" / args.lesson / name, as_version=4)
    release_path = args.course / "lessons" / args.lesson / name
    release = nbformat.read(release_path, as_version=4) if release_path.exists() else None
    model = args.model or (args.course / "checkpoints" / "course_cnn.pt")
    options = Options(cell_timeout=args.timeout, sandboxed=not args.unsafe_no_sandbox,
                      model=model if model.exists() else None)
    if options.sandboxed:
        sandbox.check()
    judge = Judge(options)
    try:
        graded = grade(args.submission, source, release, judge, options, runner_socket=args.runner_socket)
    finally:
        judge.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if graded.notebook is not None:
        nbformat.write(graded.notebook, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(graded.report, indent=1))
    print(json.dumps(graded.report))
    return 0 if graded.notebook is not None else 1

