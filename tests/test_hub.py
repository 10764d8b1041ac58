"""The classroom on JupyterHub, end to end in a real browser: release, fetch, submit, collect,
autograde, feedback, with `make hub`'s configuration (hub/jupyterhub_config.py).

One hub for the whole test, on a temporary copy of the course holding lesson 01 only: an
instructor (`teach`) and two students (`ana` answers right, `bo` wrong), all through Chromium:

1. the instructor generates and releases lesson 01 in formgrader (the course service);
2. each student logs in, fetches it in the Assignments panel, writes answers in the notebook,
   saves and submits;
3. the instructor collects in formgrader, runs `python -m grading autograde` (the course's grading,
   what `make autograde` runs) in a terminal of the course service, generates and releases feedback;
4. each student fetches feedback and opens it: their own score, nothing of the other's.

What differs from `make hub`: a shared test password instead of PAM, and every server runs as the
account running the test (SimpleLocalProcessSpawner, a home folder each) instead of as each
person's Unix account: here the course's Python lives under /root, where no other account can
run it. The course service runs as a named account, as in `make hub` for a course an instructor
owns (here the test's account). The roles, groups, exchange, course service and nbgrader settings
are the hub's own.
"""

from __future__ import annotations

import ctypes
import getpass
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hub"))
from prepare import close_private, make_folders  # noqa: E402  (hub/prepare.py, what `make hub` runs first)
# the same Chromium, offline rules and fixture as the other browser checks
from test_browser import SHOTS, browser, free_port, local_only  # noqa: E402, F401 (browser is a fixture)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
LESSON = "01_convolution"
INSTRUCTOR, RIGHT, WRONG = "teach", "ana", "bo"
PASSWORD = secrets.token_urlsafe(16)
CHP = ROOT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
CAP = 180_000  # ms: a cap for hangs only; every step waits on a condition


# ---- the hub ------------------------------------------------------------------------------------

def make_course(folder: Path) -> None:
    """The course folder the service serves: lesson 01's source and release, the nbgrader config
    and the course's grading tools (as in the repository, which is the course folder of `make hub`)."""
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for part in ("solutions", "lessons"):
        shutil.copytree(ROOT / part / LESSON, folder / part / LESSON, ignore=ignore)
    shutil.copytree(ROOT / "grading", folder / "grading", ignore=ignore)
    shutil.copy(ROOT / "nbgrader_config.py", folder)


def hub_config(tmp: Path) -> str:
    """The hub's configuration with the two changes of the module docstring, and what a test needs:
    JupyterLab settings that put every cell in the page, a quick stop, the service run as a named
    account (as `make hub` runs it for a course an instructor owns)."""
    settings = tmp / "lab-settings"  # every cell in the DOM, and no news pop-up over the page
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return f"""
load_subconfig({str(ROOT / 'hub' / 'jupyterhub_config.py')!r})
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {PASSWORD!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(tmp / 'home' / '{username}')!r}
c.LocalProcessSpawner.interrupt_timeout = 1  # then SIGTERM: a quick stop at the end
c.Spawner.args = {['--allow-root'] if os.getuid() == 0 else []!r}
c.Spawner.environment["JUPYTERLAB_SETTINGS_DIR"] = {str(settings)!r}
# as for a course folder an instructor owns: the service runs as a named account (here the test's),
# so JupyterHub gives it a JUPYTERHUB_USER and that account's HOME
c.JupyterHub.services[0]["user"] = {getpass.getuser()!r}
c.JupyterHub.services[0]["environment"].update(JUPYTERLAB_SETTINGS_DIR={str(settings)!r},
                                               JUPYTERLAB_WORKSPACES_DIR={str(tmp / 'workspaces')!r})
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """JupyterHub on 127.0.0.1 for the three accounts: (base URL, temporary folder with the course,
    the exchange, the homes and hub.log; pytest keeps the last few)."""
    assert CHP.exists(), f"{CHP} is missing: run `make hub-proxy` (configurable-http-proxy from npm)"
    tmp = tmp_path_factory.mktemp("hub")
    make_course(tmp / "course")
    make_folders(tmp / "exchange", tmp / "state")
    assert close_private(tmp / "course") == []  # nbgrader then writes in closed folders
    (tmp / "roster.txt").write_text(f"instructor {INSTRUCTOR}\nstudent {RIGHT}\nstudent {WRONG}\n")
    (tmp / "hub_config.py").write_text(hub_config(tmp))
    log_path = tmp / "hub.log"
    log = open(log_path, "w")
    process, base, service_port = start_hub(tmp, log)
    problem = wait_until_up(process, [f"{base}/hub/health", f"http://127.0.0.1:{service_port}/services/imgrec/api"])
    if problem:
        stop(process, tmp)
        pytest.fail(f"JupyterHub did not start ({problem}):\n{hub_errors(log_path.read_text())}")
    try:
        yield base, tmp
    finally:
        stop(process, tmp)
        log.close()


def start_hub(tmp: Path, log) -> tuple[subprocess.Popen, str, int]:
    """Start JupyterHub with the course in `tmp` on four free ports: (process, base URL, the course
    service's port)."""
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    port, service_port, api_port, proxy_api_port = ports
    env = {**os.environ, "IMGREC_HUB_COURSE": str(tmp / "course"), "IMGREC_HUB_EXCHANGE": str(tmp / "exchange"),
           "IMGREC_HUB_ROSTER": str(tmp / "roster.txt"), "IMGREC_HUB_STATE": str(tmp / "state"),
           "IMGREC_HUB_PORT": str(port), "IMGREC_HUB_API_PORT": str(api_port),
           "IMGREC_HUB_PROXY_API_PORT": str(proxy_api_port), "IMGREC_HUB_SERVICE_PORT": str(service_port)}
    process = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(tmp / "hub_config.py")], cwd=tmp, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=end_with_this_process)
    return process, f"http://127.0.0.1:{port}", service_port


def wait_until_up(process: subprocess.Popen, urls: list[str]) -> str | None:
    """Wait until each URL answers; None, or why not: the hub ended, or the cap passed."""
    deadline = time.monotonic() + CAP / 1000
    for url in urls:
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if process.poll() is not None:
                    return f"it ended with exit status {process.returncode} while {url} did not answer"
                if time.monotonic() > deadline:
                    return f"{url} did not answer in {CAP // 1000} s"
                time.sleep(0.5)
    return None


def hub_errors(log: str) -> str:
    """The hub's own error lines and tracebacks from its log, then the log's end: the users' and the
    course service's servers log much more, which would push the hub's reason out of a plain tail."""
    errors = [line for line in log.splitlines()
              if re.match(r"\[[EC] ", line) or "Error" in line.split(":")[0] or "Traceback" in line]
    return "the hub's errors:\n" + "\n".join(errors[-40:]) + "\n\nthe log's end:\n" + log[-2500:]


def end_with_this_process() -> None:
    """In the hub's process before it starts: Linux sends it SIGTERM when the test's process ends,
    even killed (the hub then stops the servers it started, the service and the proxy). And SIGINT
    ignored, as in a hub started in the background (`nohup sudo make hub &`)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ignored_signals(course: Path) -> int:
    """The mask of signals the course service's process ignores (/proc/PID/status, SigIgn)."""
    for process in Path("/proc").glob("[0-9]*"):
        try:
            command = (process / "cmdline").read_bytes().split(b"\0")
            status = (process / "status").read_text()
        except OSError:
            continue
        if f"--ServerApp.root_dir={course.resolve()}".encode() in command:
            return int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
    raise AssertionError(f"no course service process for {course}")


def stop(process: subprocess.Popen, tmp: Path) -> None:
    """SIGTERM: the hub stops the users' servers, the service and its proxy; SIGKILL what is left."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
    proxy = tmp / "state" / "proxy.pid"
    if proxy.exists():
        try:
            os.kill(int(proxy.read_text()), 9)
        except (ProcessLookupError, ValueError):
            pass


# ---- people in the browser ----------------------------------------------------------------------

def log_in(browser, base: str, name: str, next_url: str = ""):
    """A fresh browser context, logged in on the hub's login page; the page after the login."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route("**/*", local_only)
    page = context.new_page()
    page.set_default_timeout(CAP)
    page.goto(f"{base}/hub/login" + (f"?next={next_url}" if next_url else ""))
    page.fill("input#username_input", name)
    page.fill("input#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(lambda url: "/hub/login" not in url)  # logged in: a student's server is starting
    return page


def open_lab(page, base: str, name: str) -> None:
    page.wait_for_url(re.compile(rf".*/user/{name}/lab.*"), timeout=CAP)
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").wait_for()


def formgrader(page, base: str, column: str) -> str:
    """Click one of formgrader's buttons for the lesson (assign = generate, release, collect,
    generate-feedback, release-feedback) and return the log of its success window."""
    page.goto(f"{base}/services/imgrec/formgrader/manage_assignments")
    page.locator("tr", has_text=LESSON).locator(f"td.{column} a").click()
    result = page.locator("#success-modal, #error-modal")
    result.wait_for()
    text = result.inner_text()
    assert page.locator("#success-modal").count(), f"formgrader's {column} failed:\n{text}"
    return text


def assignments(page):
    """nbgrader's Assignments panel (Nbgrader > Assignment List), refreshed."""
    page.locator(".lm-MenuBar-item", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    panel = page.locator("#assignments:visible")
    panel.wait_for()
    return panel


def answers(notebook: Path, course: Path, right: bool, name: str) -> dict[int, str]:
    """{cell index: source} for the answer cells of the student's notebook: the instructor's
    solution (the source cell with the same grade_id), or a wrong answer."""
    source = nbformat.read(course / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    solutions = {cell.metadata.nbgrader.grade_id: cell.source for cell in source.cells if "nbgrader" in cell.metadata}
    found = {}
    for i, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            if right:
                lines = solutions[cell.metadata.nbgrader.grade_id].splitlines()
                text = "\n".join(line for line in lines if "### BEGIN SOLUTION" not in line
                                 and "### END SOLUTION" not in line)
            else:
                text = cell.source.replace("raise NotImplementedError()", "return 0")
            found[i] = f"# answer of {name}\n{text}"
    assert len(found) == 3, f"lesson 01 should have 3 answer cells, found {sorted(found)}"
    return found


def fetch_answer_submit(page, base: str, tmp: Path, name: str, right: bool) -> None:
    open_lab(page, base, name)
    panel = assignments(page)
    panel.locator("#released_assignments_list .list_item", has_text=LESSON).locator("button", has_text="Fetch").click()
    panel.locator("#fetched_assignments_list .list_item", has_text=LESSON).first.wait_for()
    notebook = tmp / "home" / name / LESSON / f"{LESSON}.ipynb"
    assert notebook.exists(), f"fetch should put the lesson in {name}'s home folder"

    page.goto(f"{base}/user/{name}/lab/tree/{LESSON}/{LESSON}.ipynb")
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for()
    mine = answers(notebook, tmp / "course", right, name)
    release = nbformat.read(notebook, as_version=4)
    for i, text in mine.items():  # the answer cell: its function's first line and the stub
        cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell", has_text="YOUR CODE HERE").filter(
            has_text=release.cells[i].source.splitlines()[0])
        assert cell.count() == 1, f"answer cell {i}: {cell.count()} cells match"
        editor = cell.locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.fill(text)
    page.keyboard.press("Control+s")
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)")
    saved = nbformat.read(notebook, as_version=4)
    assert all(saved.cells[i].source == text for i, text in mine.items()), "the answers were not saved"

    panel = assignments(page)
    panel.locator("#fetched_assignments_list .list_item", has_text=LESSON).locator("button", has_text="Submit").click()
    panel.locator("#submitted_assignments_list .list_item", has_text=LESSON).first.wait_for()
    page.screenshot(path=SHOTS / f"hub_submitted_{name}.png")
    page.context.close()


def autograde_in_terminal(page, base: str, course: Path) -> dict:
    """The instructor opens a terminal in the course service and runs the course's grading."""
    page.goto(f"{base}/services/imgrec/lab")
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^New$")).hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Terminal$")).click()
    terminal = page.locator(".jp-Terminal:visible .xterm")
    terminal.wait_for()
    page.wait_for_function(  # the shell printed its prompt: xterm's input follows the cursor
        "parseFloat(document.querySelector('.jp-Terminal:not(.lm-mod-hidden) .xterm-helper-textarea').style.left) > 0")
    terminal.click()
    done = course / "autograde.exit"
    page.keyboard.type(f"python -m grading autograde; echo $? > {done.name}")
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 600
    while not done.exists() or not done.read_text().strip():
        assert time.monotonic() < deadline, "python -m grading autograde did not finish in 10 minutes"
        time.sleep(0.5)
    page.screenshot(path=SHOTS / "hub_autograde_terminal.png")
    report = json.loads((course / "grading_report.json").read_text())
    assert done.read_text().strip() == "0", f"autograde failed: {report}"
    return report


def fetch_feedback(browser, base: str, tmp: Path, name: str) -> str:
    """The student fetches feedback in the Assignments panel and opens it; the page's text."""
    page = log_in(browser, base, name)
    open_lab(page, base, name)
    panel = assignments(page)
    submitted = panel.locator("#submitted_assignments_list .list_item", has_text=LESSON)
    submitted.locator("button", has_text="Fetch Feedback").click()
    submitted.locator("a", has_text="view feedback").click()  # the file browser goes to the folder
    page.locator(".jp-DirListing-item", has_text=f"{LESSON}.html").dblclick()
    frame = page.frame_locator(".jp-HTMLViewer:visible iframe")
    frame.locator("body", has_text="Score").wait_for()
    text = frame.locator("body").inner_text()
    page.screenshot(path=SHOTS / f"hub_feedback_{name}.png")
    page.context.close()
    return text


# ---- the test -----------------------------------------------------------------------------------

def test_release_submit_grade_feedback_through_the_hub(hub, browser):
    base, tmp = hub
    course = tmp / "course"
    started = time.monotonic()
    # the hub stops the service with SIGINT first: ignored, it would wait 30 s for SIGTERM
    assert not ignored_signals(course) & (1 << (signal.SIGINT - 1)), "the course service ignores SIGINT"

    students = {name: log_in(browser, base, name) for name in (RIGHT, WRONG)}  # their servers start meanwhile
    teacher = log_in(browser, base, INSTRUCTOR, next_url="/services/imgrec/formgrader")
    teacher.locator("tr", has_text=LESSON).wait_for()  # the course service let the instructor in
    formgrader(teacher, base, "assign")
    assert "Released as: imgrec 01_convolution" in formgrader(teacher, base, "release")

    print(f"released at {time.monotonic() - started:.0f} s")
    for name, page in students.items():
        fetch_answer_submit(page, base, tmp, name, right=name == RIGHT)
    print(f"submitted at {time.monotonic() - started:.0f} s")

    formgrader(teacher, base, "collect")
    for name in (RIGHT, WRONG):
        assert (course / "submitted" / name / LESSON / f"{LESSON}.ipynb").exists(), f"{name} was not collected"
    report = autograde_in_terminal(teacher, base, course)
    print(f"graded at {time.monotonic() - started:.0f} s")
    formgrader(teacher, base, "generate-feedback")
    formgrader(teacher, base, "release-feedback")
    teacher.context.close()
    assert set(report) == {f"{name}/{LESSON}/{LESSON}.ipynb" for name in (RIGHT, WRONG)}, report

    right, wrong = (fetch_feedback(browser, base, tmp, name) for name in (RIGHT, WRONG))
    assert "Score: 10.0 / 10.0" in right, right[:2000]
    assert "Score: 0.0 / 10.0" in wrong, wrong[:2000]
    assert f"# answer of {RIGHT}" in right and f"# answer of {WRONG}" not in right
    assert f"# answer of {WRONG}" in wrong and f"# answer of {RIGHT}" not in wrong
    # each home folder holds its owner's feedback only
    for name, other in ((RIGHT, WRONG), (WRONG, RIGHT)):
        feedback = tmp / "home" / name / LESSON / "feedback"
        pages = [p for p in feedback.rglob("*.html") if ".ipynb_checkpoints" not in p.parts]
        assert len(pages) == 1 and f"# answer of {other}" not in pages[0].read_text(), pages
    print(f"the whole cycle took {time.monotonic() - started:.0f} s")
