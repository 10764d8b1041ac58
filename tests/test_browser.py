"""Real-browser checks: the course website and JupyterLab, in headless Chromium (Playwright).

- Every page of the built site (book/_build/html, `make book`) loads with no console error and no
  failed request while every address but localhost is blocked: figures load, math is typeset by
  the vendored MathJax (`mjx-container` elements), nothing comes from the network.
- JupyterLab, started here on a temporary copy of the course, opens the student notebook of
  lesson 00, then runs all cells of a solution notebook from the Run menu: no error, a widget shows.

The browser is Debian's chromium (`make browser` installs it), never a Playwright download.
Screenshots go to tests/screenshots/ for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "book" / "_build" / "html"
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# The solution notebook JupyterLab runs: the first lesson, quick to run, and it has a widget.
RUN_LESSON = "00_images_and_tensors"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

pytestmark = pytest.mark.slow


def free_port() -> int:
    """A free port below the kernel's ephemeral range, where the ports that processes get by binding
    port 0 never fall: a port inside it can be taken, between this call and the server's bind, by a
    Jupyter kernel that another test starts (a fresh-clone run under load failed so: the hub of
    test_hub ended with "Address already in use" on its API port)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", secrets.choice(range(10_000, low)) if low > 12_000 else 0))
            except OSError:
                continue
            return s.getsockname()[1]


def local_only(route) -> None:
    """Let requests to this machine through, abort every other one (the site must work offline)."""
    url = urlparse(route.request.url)
    if url.scheme in ("data", "blob") or url.hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        route.abort()


def test_free_port_is_free_and_outside_the_ports_that_binding_port_0_hands_out():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high or low <= 12_000, f"port {port} is in the ephemeral range {low}-{high}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # raises if it was not free


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser` (Debian's chromium)"
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


class Problems:
    """Console errors, uncaught exceptions and failed requests of one browser context, and the
    requests still in flight (a page is left only when none is: leaving aborts them)."""

    def __init__(self, context):
        self.items: list[str] = []
        self.pending: set = set()
        context.on("page", self.watch)
        context.on("request", lambda request: self.pending.add(request))
        context.on("requestfinished", lambda request: self.pending.discard(request))
        context.on("requestfailed", self.failed)

    def failed(self, request) -> None:
        self.pending.discard(request)
        self.items.append(f"request failed: {request.url} ({request.failure})")

    def settle(self, page, seconds: float = 30) -> None:
        """Wait until no request of the context is in flight (at most `seconds`)."""
        deadline = time.monotonic() + seconds
        while self.pending and time.monotonic() < deadline:
            page.wait_for_timeout(50)

    def watch(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and self.items.append(f"console: {m.text} ({m.location})"))
        page.on("pageerror", lambda e: self.items.append(f"page error: {e}"))

    def take(self) -> list[str]:
        items, self.items = self.items, []
        return items


# ---- the website --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").exists():
        subprocess.run(["make", "book"], cwd=ROOT, check=True)
    handler = functools.partial(Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def site_pages() -> list[str]:
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if "_static" not in p.parts)


# Loads every image of the page (lazy ones too) and lists those that did not load.
LOAD_IMAGES = """async () => {
    const images = [...document.images];
    images.forEach(i => { i.loading = 'eager'; });
    await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
    return images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
}"""


def test_every_page_of_the_site_loads_offline_with_figures_and_math(browser, site_url):
    pages = site_pages()
    assert len(pages) > 10, f"only {pages} built: run make book"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", local_only)
    problems = Problems(context)
    page = context.new_page()
    report: dict[str, list[str]] = {}
    typeset = 0
    for name in pages:
        page.goto(f"{site_url}/{name}", wait_until="load")
        found = problems.take()
        math = page.locator(".math").count()
        if math:
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
            page.evaluate("MathJax.startup.promise")
            page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=30_000)
            untypeset = page.evaluate(
                "[...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
            errors = page.locator("mjx-merror").count()
            if untypeset or errors:
                found.append(f"{untypeset} of {math} formulas not typeset, {errors} TeX errors")
            typeset += 1
        broken = page.evaluate(LOAD_IMAGES)
        if broken:
            found.append(f"images that did not load: {broken}")
        page.evaluate("window.scrollTo(0, 0)")
        page.evaluate("document.fonts.ready.then(() => true)")  # MathJax's fonts come after its typesetting
        problems.settle(page)
        found += problems.take()
        if found:
            report[name] = found
        page.screenshot(path=SHOTS / f"site_{name.replace('/', '_').removesuffix('.html')}.png")
    context.close()
    assert not report, "pages with problems:\n" + json.dumps(report, indent=1)
    assert typeset >= 3, f"math typeset on only {typeset} pages"


def test_lesson_page_shows_figures_and_typeset_math(browser, site_url):
    """A close look at one lesson page: its figures are drawn and a formula is typeset in view."""
    lessons = sorted((SITE / "lessons").glob("*/*.html"))
    assert lessons, "no lesson pages: run make book"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.route("**/*", local_only)
    page = context.new_page()
    page.goto(f"{site_url}/{lessons[0].relative_to(SITE).as_posix()}", wait_until="load")
    page.wait_for_selector("mjx-container", timeout=30_000)
    formula = page.locator(".math mjx-container").first
    formula.scroll_into_view_if_needed()
    box = formula.bounding_box()
    assert box and box["width"] > 5 and box["height"] > 5, "a typeset formula should take up room"
    page.screenshot(path=SHOTS / "site_lesson_math.png")
    figure = page.locator("img[src*='_images/']").first
    figure.scroll_into_view_if_needed()
    assert figure.evaluate("i => i.naturalWidth") > 50
    page.screenshot(path=SHOTS / "site_lesson_figure.png")
    context.close()


# ---- JupyterLab ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a temporary copy of the course: (base URL, token, course folder)."""
    tmp = tmp_path_factory.mktemp("lab")
    course = tmp / "course"
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("lessons", "solutions"):
        shutil.copytree(ROOT / folder, course / folder, ignore=ignore)
    settings = tmp / "settings"
    for plugin, values in {
        # every cell in the DOM, so the test can see every prompt and output
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    config = tmp / "config"
    config.mkdir()
    (config / "jupyter_lab_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    }))
    port, token = free_port(), secrets.token_hex(16)
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "MPLBACKEND": "Agg",
    }
    command = [str(bin_dir / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               f"--ServerApp.token={token}", f"--ServerApp.root_dir={course}"]
    if os.getuid() == 0:
        command.append("--allow-root")
    log = open(tmp / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(tmp / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield base, token, course
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def lab_page(browser, lab):
    base, token, _ = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route("**/*", local_only)
    page = context.new_page()
    page.set_default_timeout(180_000)  # a cap for hangs only: every step waits on a condition

    def answer(dialog) -> None:
        """A JupyterLab dialog over the notebook intercepts every click: answer it with its default
        button, as a learner would, and say so in a warning with its text and a screenshot."""
        text = " | ".join(dialog.inner_text().split("\n"))
        page.screenshot(path=SHOTS / "lab_dialog.png")
        warnings.warn(f"JupyterLab showed a dialog, answered with its default button: {text[:500]}")
        accept = dialog.locator(".jp-Dialog-button.jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")

    page.add_locator_handler(page.locator(".jp-Dialog-content"), answer)
    yield page
    context.close()


def start_kernel(lab, path: str) -> None:
    """Start the notebook's kernel through the server and wait until it has answered, before the page opens.

    JupyterLab then joins a kernel that is up. Left to JupyterLab, the kernel starts while the page
    connects, and on a loaded machine that race can fail the first connection (a 500 on its channels),
    after which JupyterLab asks which kernel to use or starts a second one."""
    base, token, course = lab
    body = {"path": path, "name": Path(path).name, "type": "notebook", "kernel": {"name": "python3"}}
    request = urllib.request.Request(f"{base}/api/sessions", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        session = json.load(response)
    runtime = course.parent / "runtime"  # the lab fixture's JUPYTER_RUNTIME_DIR
    client = BlockingKernelClient(connection_file=str(runtime / f"kernel-{session['kernel']['id']}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=180)  # a kernel_info request answered
    except RuntimeError as error:
        pytest.fail(f"the kernel for {path} did not start: {error}")
    finally:
        client.stop_channels()


def open_notebook(page, lab, path: str) -> None:
    start_kernel(lab, path)
    base, token, _ = lab
    page.goto(f"{base}/lab/tree/{path}?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=180_000)
    # the kernel has started and waits: the status bar reads "Python 3 (imgrec) | Idle"
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for(timeout=180_000)


def wait_until_ran(page, code_cells: int) -> None:
    """Wait until no cell waits or runs ([*]) and every code cell has a number, or an error showed."""
    page.wait_for_function(
        """([n]) => {
            const panel = [...document.querySelectorAll('.jp-NotebookPanel')].find(p => p.offsetParent);
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
            const busy = prompts.some(t => t.includes('*'));
            const numbered = prompts.filter(t => /\\[\\d+\\]/.test(t)).length;
            const failed = panel.querySelector('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]');
            return !busy && (numbered === n || failed !== null);
        }""",
        arg=[code_cells], timeout=300_000, polling=500,
    )


def test_jupyterlab_opens_the_first_lesson(lab, lab_page):
    base, token, course = lab
    path = f"lessons/{RUN_LESSON}/{RUN_LESSON}.ipynb"
    open_notebook(lab_page, lab, path)
    cells = len(nbformat.read(course / path, as_version=4).cells)
    panel = lab_page.locator(".jp-NotebookPanel:visible")
    assert panel.locator(".jp-Cell").count() == cells, "every cell of the notebook should be shown"
    heading = panel.locator(".jp-MarkdownCell h1").first
    assert "Lesson 00" in heading.inner_text()
    lab_page.screenshot(path=SHOTS / "lab_lesson_00.png")


def test_jupyterlab_runs_a_solution_notebook_and_shows_a_widget(lab, lab_page):
    base, token, course = lab
    path = f"solutions/{RUN_LESSON}/{RUN_LESSON}.ipynb"
    notebook_file = course / path
    for cell in (nb := nbformat.read(notebook_file, as_version=4)).cells:  # start from a blank run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, notebook_file)
    code_cells = sum(1 for cell in nb.cells if cell.cell_type == "code")

    page = lab_page
    open_notebook(page, lab, path)
    panel = page.locator(".jp-NotebookPanel:visible")
    started = panel.locator(".jp-CodeCell .jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for attempt in range(2):  # the menu acts on the focused notebook: focus it, then Run > Run All Cells
        panel.locator(".jp-Cell").first.click()
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            started.first.wait_for(timeout=60_000)
            break
        except PlaywrightTimeout:
            assert attempt == 0, "Run > Run All Cells started nothing"
    try:
        wait_until_ran(page, code_cells)
    except PlaywrightTimeout:
        prompts = panel.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        pytest.fail(f"the notebook did not finish: prompts {prompts}, expected {code_cells} numbered")
    finally:
        page.screenshot(path=SHOTS / "lab_solution_00_ran.png")
    stderr = panel.locator('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]')
    errors = [text for text in stderr.all_inner_texts() if re.search(r"Traceback|Error", text)]
    assert not errors, f"cells failed: {errors[0][:2000]}"
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert sum(bool(re.search(r"\[\d+\]", t)) for t in prompts) == code_cells, f"not every cell ran: {prompts}"

    widget = panel.locator(".jp-OutputArea-output .jupyter-widgets").first
    widget.wait_for(state="visible", timeout=60_000)
    widget.scroll_into_view_if_needed()
    assert panel.locator(".jp-OutputArea-output .widget-slider, .jp-OutputArea-output .jupyter-widgets input").count()
    assert "Error displaying widget" not in panel.inner_text()
    page.screenshot(path=SHOTS / "lab_solution_00_widget.png")

    # What the kernel recorded: save from the UI and read the file back.
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^File$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Save Notebook$")).click()
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-current:not(.jp-mod-dirty)", timeout=60_000)
    saved = nbformat.read(notebook_file, as_version=4)
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], "the saved notebook holds an error"
    assert all(c.execution_count for c in saved.cells if c.cell_type == "code")
