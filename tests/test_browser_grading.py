"""Hostile HTML, in a real browser: formgrader and the feedback page run no script a student wrote.

A temporary course with a one-exercise assignment and two students who hand in the same attack:
a markdown cell with `<img src="data:," onerror="...">` and a code cell that displays an HTML and a
JavaScript output. The payload does what the measured attack did: it uses the instructor's
Jupyter API (a PUT of PWNED-<student>.txt through /api/contents, with the page's XSRF cookie), and it
leaves traces a test can see: the page title, an element with a known id, a console message.

- `mallory` is graded by `make autograde` (`grade_hostile_course`: its graded notebook goes
  through grading/sanitize.py); formgrader's page of the submission and the feedback page must show
  the student's work and run nothing of it.
- `control` hands in the same and is graded by plain `nbgrader autograde` (nothing sanitised): the
  payload runs on both pages and writes its file through formgrader, so the checks can fail.

The browser is Debian's chromium (`make browser`), JupyterLab runs the nbgrader server extension
(formgrader), and every address but localhost is blocked. Screenshots go to tests/screenshots/.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
# the same Chromium, offline rules and fixture as the site and JupyterLab checks
from test_browser import SHOTS, browser, free_port, local_only  # noqa: E402, F401 (browser is a fixture)
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")  # nbgrader runs `alembic`

LESSON = "hostile"
STUDENT = "mallory"  # graded by the pipeline, sanitised
CONTROL = "control"  # the same submission, graded by plain nbgrader autograde
ANSWER = "def double(x):\n    return 2 * x\n"
PROSE = "My answer doubles the input."


def payload(student: str) -> str:
    """JavaScript that uses the instructor's Jupyter API and leaves traces. No double quotes: it goes
    into an HTML attribute."""
    mark = f"PWNED-{student}"
    return (f"document.title='{mark}';"
            f"var d=document.createElement('div');d.id='{mark}';document.body.appendChild(d);"
            f"console.log('{mark} ran');"
            "try{var x=(document.cookie.match(/_xsrf=([^;]+)/)||[])[1]||'';"
            f"fetch('/api/contents/{mark}.txt',{{method:'PUT',credentials:'same-origin',"
            "headers:{'X-XSRFToken':x,'Content-Type':'application/json'},"
            "body:JSON.stringify({type:'file',format:'text',content:'pwned'})})"
            f".then(function(r){{d.dataset.put=r.status;console.log('{mark} PUT '+r.status)}})"
            f".catch(function(e){{console.log('{mark} PUT failed '+e)}})}}"
            f"catch(e){{console.log('{mark} no API: '+e)}}")


# ---- the course ---------------------------------------------------------------------------------

def nbgrader(course: Path, *args: str) -> None:
    result = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stderr[-3000:]}"


def source_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell("# A tiny assignment\n\nWrite `double(x)`."),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                      metadata={"nbgrader": {"grade": False, "solution": True, "locked": False,
                                             "grade_id": "double", "schema_version": 3}}),
        new_code_cell("def test_double(double):\n    assert double(2) == 4\n\n\ntest_double(double)\n", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": "test_double", "points": 1,
            "schema_version": 3}}),
    ])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def submit(course: Path, student: str) -> None:
    """The released notebook, answered, with the attack in a markdown cell and in outputs."""
    nb = nbformat.read(course / "lessons" / LESSON / f"{LESSON}.ipynb", as_version=4)
    nb.cells[1].source = ANSWER
    js = payload(student)
    nb.cells.insert(2, new_markdown_cell(f'{PROSE}\n\n<img src="data:," onerror="{js}">\n'))
    nb.cells.insert(3, new_code_cell(
        "from IPython.display import HTML, Javascript, display\n"
        f"display(HTML({repr(f'<img src=x onerror={chr(34)}{js}{chr(34)}>')}))\n"
        f"display(Javascript({js!r}))"))
    folder = course / "submitted" / student / LESSON
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{LESSON}.ipynb")


def grade_hostile_course(course: Path) -> None:
    """`make autograde` for the students now under submitted/: each submission in its own sandbox,
    and the graded notebook made safe to render before nbgrader stores it."""
    result = subprocess.run([sys.executable, "-m", "grading", "autograde"], cwd=course, capture_output=True,
                            text=True, timeout=900, env=dict(ENV, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, f"make autograde failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """The graded course: mallory through the pipeline, control by plain nbgrader; feedback for both."""
    course = tmp_path_factory.mktemp("grading") / "course"
    (course / "solutions" / LESSON).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    nbformat.write(source_notebook(), course / "solutions" / LESSON / f"{LESSON}.ipynb")
    started = time.monotonic()
    nbgrader(course, "generate_assignment", LESSON, "--force")
    submit(course, STUDENT)
    grade_hostile_course(course)
    submit(course, CONTROL)  # after the pipeline ran, so that it stays unsanitised
    nbgrader(course, "autograde", LESSON, f"--student={CONTROL}")
    nbgrader(course, "generate_feedback", LESSON)
    print(f"course graded in {time.monotonic() - started:.0f} s")
    return course


def submission_id(course: Path, student: str) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(LESSON, LESSON, student)
        assert submission.score == 1, f"{student}'s honest answer should get its point"
        return submission.id


# ---- JupyterLab with formgrader, and the browser ------------------------------------------------

@pytest.fixture(scope="module")
def server(course, tmp_path_factory):
    """JupyterLab on the course folder (formgrader reads nbgrader_config.py from its working folder)."""
    tmp = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    env = {**ENV, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "IPYTHONDIR": str(tmp / "ipython")}
    command = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={course}"]
    if os.getuid() == 0:
        command.append("--allow-root")
    log_path = tmp / "lab.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Visit:
    """One page in a fresh browser context, with what it logged and requested."""

    def __init__(self, browser, server, path: str):
        base, token = server
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000})
        self.context.route("**/*", local_only)
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.console: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text))
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        # Log in as the instructor does: the session cookie then goes with every request of the page
        # (a token in the formgrader URL would set it for that one path only). The page is opened
        # as from a link in JupyterLab (Jupyter serves /files/ only to its own pages).
        self.page.goto(f"{base}/api/status?token={token}")
        self.page.goto(f"{base}/{path}", wait_until="load", referer=f"{base}/lab")

    def settle(self) -> None:
        """Wait until the page has loaded, every image has loaded or failed (an onerror handler has
        had its turn) and no request is in flight (a fetch the page started has finished)."""
        self.page.wait_for_load_state("load")
        self.page.wait_for_function("[...document.images].every(i => i.complete)")
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


def assert_no_script_ran(visit: Visit, course: Path, student: str, title: str) -> None:
    mark = f"PWNED-{student}"
    page = visit.page
    assert page.title() == title, f"the page title was changed to {page.title()!r}"
    assert page.locator(f"[id='{mark}']").count() == 0, "the payload added its element"
    assert not [m for m in visit.console if mark in m], f"the payload logged: {visit.console}"
    assert not [r for r in visit.requests if "/api/contents" in r], f"the page called the API: {visit.requests}"
    assert not (course / f"{mark}.txt").exists(), "the payload wrote a file through the Jupyter API"
    # nothing that could run is left in the notebook's part of the page (formgrader's own navigation
    # bar has onclick handlers): no handler attribute, no script, no javascript: link
    found = page.evaluate("""() => {
        const notebook = [...document.querySelectorAll('#notebook-container')].pop();
        return [...notebook.querySelectorAll('*')].flatMap(e => [...e.attributes]
            .filter(a => a.name.startsWith('on') || /^\\s*(javascript|vbscript):/i.test(a.value))
            .map(a => e.tagName + ' ' + a.name)).concat(
            [...notebook.querySelectorAll('script, iframe, object, embed, svg')].map(e => e.tagName));
    }""")
    assert not found, f"in the notebook: {found}"


def wait_for_payload(visit: Visit, student: str) -> None:
    mark = f"PWNED-{student}"
    visit.page.wait_for_function(f"document.title === '{mark}' && document.getElementById('{mark}') !== null")
    visit.settle()
    assert [m for m in visit.console if m == f"{mark} ran"], visit.console


def test_formgrader_shows_the_submission_and_runs_none_of_its_script(course, server, browser):
    visit = Visit(browser, server, f"formgrader/submissions/{submission_id(course, STUDENT)}/")
    try:
        page = visit.page
        page.locator("#notebook-container .cell", has_text=PROSE).first.wait_for(state="visible")
        page.locator("input.score").first.wait_for(state="visible")  # formgrader's own script ran
        visit.settle()
        container = page.locator("#notebook-container").last  # the template's own one holds it
        assert '<img src="data:," onerror="document.title' in container.inner_text(), \
            "the student's markdown should be shown, as text"
        assert "def double(x):" in container.inner_text()
        text = container.inner_text()  # the HTML and JavaScript outputs kept only their text/plain
        assert "<IPython.core.display.HTML object>" in text and "<IPython.core.display.Javascript object>" in text
        page.screenshot(path=SHOTS / "grading_formgrader_sanitised.png", full_page=True)
        assert_no_script_ran(visit, course, STUDENT, title=LESSON)
    finally:
        visit.close()


def test_formgrader_control_runs_the_unsanitised_payload(course, server, browser):
    """The control: the same submission, not sanitised, uses the instructor's Jupyter API from formgrader."""
    visit = Visit(browser, server, f"formgrader/submissions/{submission_id(course, CONTROL)}/")
    try:
        wait_for_payload(visit, CONTROL)
        status = visit.page.wait_for_function(f"document.getElementById('PWNED-{CONTROL}').dataset.put").json_value()
        # 201 made the file; a payload that ran again (the page drawn twice on a busy machine) gets 200
        assert status in ("201", "200") and f"PWNED-{CONTROL} PUT 201" in visit.console \
            and (course / f"PWNED-{CONTROL}.txt").exists(), f"the payload's PUT did not land: {visit.console}"
    finally:
        visit.close()


def test_feedback_page_runs_none_of_the_students_script(course, server, browser):
    page_path = f"feedback/{STUDENT}/{LESSON}/{LESSON}.html"
    assert (course / page_path).exists(), "nbgrader generate_feedback should have written the page"
    visit = Visit(browser, server, f"files/{page_path}")
    try:
        visit.page.locator("#notebook-container .cell", has_text=PROSE).first.wait_for(state="visible")
        visit.settle()
        assert "Score: 1.0 / 1.0" in visit.page.inner_text("body")
        visit.page.screenshot(path=SHOTS / "grading_feedback_sanitised.png", full_page=True)
        assert_no_script_ran(visit, course, STUDENT, title=LESSON)
    finally:
        visit.close()


def test_feedback_control_runs_the_unsanitised_payload(course, server, browser):
    visit = Visit(browser, server, f"files/feedback/{CONTROL}/{LESSON}/{LESSON}.html")
    try:
        wait_for_payload(visit, CONTROL)
        visit.page.screenshot(path=SHOTS / "grading_feedback_control.png", full_page=True)
    finally:
        visit.close()
