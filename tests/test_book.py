"""The course website (book/, `make book`): what it shows and what it must never show.

Checks the built site in book/_build/html (built by `make book`, which `make test` runs first; a
missing site is built here) and the two small build helpers, book/build_pages.py and
book/_ext/plain_docstrings.py. The browser checks are in test_browser.py.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import docutils.core
import docutils.utils
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SITE = BOOK / "_build" / "html"
SOLUTIONS = sorted(p for p in ROOT.glob("solutions/[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)
LESSONS = [p.stem for p in SOLUTIONS]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_pages = _load("build_pages", BOOK / "build_pages.py")
plain_docstrings = _load("plain_docstrings", BOOK / "_ext" / "plain_docstrings.py")


@pytest.fixture(scope="session")
def site() -> Path:
    """The built website; `make book` builds it when it is missing."""
    if not (SITE / "index.html").exists():
        subprocess.run(["make", "book"], cwd=ROOT, check=True)
    return SITE


def page(lesson: str) -> Path:
    return SITE / "lessons" / lesson / f"{lesson}.html"


def text_of(html_text: str) -> str:
    """The text a reader sees: no scripts, styles or tags, entities decoded."""
    html_text = re.sub(r"<(script|style)\b.*?</\1>", "", html_text, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def blocks(source: str, begin: str, end: str) -> list[str]:
    """The lines between the begin and end markers of a cell's source."""
    lines, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            lines.append(line)
    return lines


def split_lines(solution: Path) -> tuple[set[str], set[str]]:
    """(secret, public): the stripped lines inside and outside solution and hidden-test blocks."""
    nb = nbformat.read(solution, as_version=4)
    secret, public = set(), set()
    for cell in nb.cells:
        hidden = blocks(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
        hidden += blocks(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
        secret |= {line.strip() for line in hidden}
        public |= {line.strip() for line in cell.source.splitlines() if line not in hidden}
    return secret, public


PUBLIC_LINES = set().union(*(split_lines(p)[1] for p in SOLUTIONS)) if SOLUTIONS else set()


def secret_lines(solution: Path) -> set[str]:
    """Lines of solution code and hidden tests that no lesson shows anywhere else.

    Short lines ('else:', 'pass', ')') and comments are left out: they prove nothing.
    """
    secret = split_lines(solution)[0] - PUBLIC_LINES
    return {line for line in secret if len(line) >= 8 and not line.startswith("#") and re.search(r"\w", line)}


# ---- the build helpers --------------------------------------------------------------------------

def _solution_notebook():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    grade = {"schema_version": 3, "grade": True, "solution": False, "locked": True, "task": False}
    answer = nbformat.v4.new_code_cell(
        'def double(x):\n    """Twice x."""\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION',
        metadata={"nbgrader": {"schema_version": 3, "grade": False, "solution": True,
                               "locked": False, "task": False, "grade_id": "double"}},
    )
    answer.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    visible = nbformat.v4.new_code_cell(
        "assert double(2) == 4", metadata={"nbgrader": {**grade, "points": 1, "grade_id": "test_double"}})
    hidden = nbformat.v4.new_code_cell(
        "# Hidden tests: more cases are checked when your notebook is graded.\n"
        "### BEGIN HIDDEN TESTS\nassert double(21) == 42\n### END HIDDEN TESTS",
        metadata={"nbgrader": {**grade, "points": 1, "grade_id": "test_double_hidden"}},
    )
    hidden.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hidden: ok\n")]
    slider = nbformat.v4.new_code_cell("widgets.IntSlider()")
    slider.outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "IntSlider(value=0)"})]
    prose = nbformat.v4.new_markdown_cell(
        "See [lesson 01](../01_convolution/01_convolution.ipynb), [the library](../../imgrec_lib/conv.py), "
        "![a figure](../../docs/figure.png), [PyTorch](https://pytorch.org) and [above](#top).")
    nb.cells = [prose, answer, visible, hidden, slider]
    return nb


def test_site_notebook_shows_stubs_and_outputs_but_no_solution_or_hidden_test(tmp_path):
    path = tmp_path / "solutions" / "09_demo" / "09_demo.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(_solution_notebook(), path)
    nb = build_pages.site_notebook(path, {"lessons/01_convolution/01_convolution.ipynb"})
    sources = "\n".join(cell.source for cell in nb.cells)
    assert "return x * 2" not in sources and "double(21)" not in sources
    assert "BEGIN" not in sources and "hidden: ok" not in json.dumps(nb)
    assert len(nb.cells) == 4, "the hidden test cell is dropped, the four others stay"
    answer = nb.cells[1]
    assert "raise NotImplementedError()" in answer.source and '"""Twice x."""' in answer.source
    assert answer.outputs[0]["data"]["image/png"] == "iVBORw0KGgo=", "figures stay"
    assert nb.cells[2].source == "assert double(2) == 4", "visible tests stay"
    widget = nb.cells[3].outputs[0]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in widget and "widget" in widget["text/markdown"]
    assert "widgets" not in nb.metadata, "stored widget state would load JavaScript from a CDN"
    prose = nb.cells[0].source
    assert "(../01_convolution/01_convolution.ipynb)" in prose, "a link to a lesson stays a link to its page"
    assert f"({build_pages.REPOSITORY}/blob/main/imgrec_lib/conv.py)" in prose
    assert f"({build_pages.REPOSITORY}/raw/main/docs/figure.png)" in prose
    assert "(https://pytorch.org)" in prose and "(#top)" in prose


def test_course_map_links_lessons_that_have_pages():
    readme = "# x\n\n## The course\n\n| # | lesson |\n|---|---|\n| 00 | images |\n| 01 | conv |\n\n## Next\n"
    text = build_pages.course_map(readme, {"lessons/00_images/00_images.ipynb"})
    assert "| [00](lessons/00_images/00_images.ipynb) | images |" in text
    assert "| 01 | conv |" in text and "## Next" not in text
    with pytest.raises(SystemExit, match="The course"):
        build_pages.course_map("# no map here\n", set())


def test_plain_docstrings_become_valid_restructuredtext():
    doc = [
        "Sigmoid without overflow for large |x|.",
        "",
        "- a list item",
        "  that goes on.",
        "",
        "    net.eval()",
        "    for p in items:",
        "        print(p)",
        "",
        "Example::",
        "",
        "    kept as it is",
    ]

    def errors(lines: list[str]) -> list[str]:
        settings = {"report_level": 5, "halt_level": 5, "warning_stream": False}
        tree = docutils.core.publish_doctree("\n".join(lines), settings_overrides=settings)
        return [m.astext() for m in tree.findall(docutils.nodes.system_message) if m["level"] >= 2]

    assert errors(doc), "the example must be a docstring that reStructuredText rejects"
    fixed = plain_docstrings.plain_to_rst(doc)
    assert errors(fixed) == []
    assert r"large \|x\|." in fixed[0]
    assert fixed.count("::") == 1 and fixed[-1] == "    kept as it is"


# ---- the built site -----------------------------------------------------------------------------

def test_every_lesson_has_a_page(site):
    missing = [lesson for lesson in LESSONS if not page(lesson).exists()]
    assert LESSONS and not missing, f"no page for {missing}: run make book"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=LESSONS)
def test_lesson_page_has_no_solution_code_and_no_hidden_test(site, solution):
    lesson = solution.stem
    built = [page(lesson), site / "_sources" / "lessons" / lesson / f"{lesson}.ipynb"]
    for path in built:
        text = path.read_text(encoding="utf-8")
        leaked = [marker for marker in MARKERS if marker in text]
        assert not leaked, f"{path.relative_to(site)} shows {leaked}"
    secrets = secret_lines(solution)
    # The library reference is left out: imgrec_lib is the course's reference implementation, public
    # by design (later lessons import it), and its docstrings state the rules (e.g. an optimizer's
    # update) that an answer implements line for line.
    everything = {p: text_of(p.read_text(encoding="utf-8")) for p in site.rglob("*.html")
                  if "reference" not in p.relative_to(site).parts}
    notebook = nbformat.read(built[1], as_version=4)
    everything[built[1]] = "\n".join(cell.source for cell in notebook.cells)
    for path, text in everything.items():
        lines = {line.strip() for line in text.splitlines()}
        shown = sorted(secrets & lines)
        assert not shown, f"{path.relative_to(site)} shows solution or hidden-test code of {lesson}: {shown[:5]}"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=LESSONS)
def test_lesson_page_shows_the_stored_figures_outputs_and_math(site, solution):
    nb = nbformat.read(solution, as_version=4)
    cells = [c for c in nb.cells if "### BEGIN HIDDEN TESTS" not in c.source]
    outputs = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", [])]
    figures = sum(1 for o in outputs if any(m in o.get("data", {}) for m in IMAGE_MIMES))
    text = page(solution.stem).read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]*src="([^"]+)"', text)
    shown = [src for src in images if "_images/" in src]
    assert len(shown) >= figures, f"{figures} figures stored, {len(shown)} shown"
    for src in shown:
        assert (page(solution.stem).parent / src).resolve().exists(), f"missing image {src}"
    printed = [o for o in outputs if o.get("output_type") == "stream" and len(o["text"].strip()) > 10]
    if printed:
        first = printed[0]["text"].strip().splitlines()[0].strip()
        assert first in text_of(text), f"the printed output {first!r} is not on the page"
    if any(c.cell_type == "markdown" and "$" in c.source for c in cells):
        assert 'class="math notranslate nohighlight"' in text, "math in the Markdown, none on the page"
        assert re.search(r'<script[^>]*src="[^"]*/es5/tex-chtml\.js', text), "math on the page, but no MathJax"
    if any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs):
        assert "An interactive widget appears here" in text


@pytest.mark.parametrize("solution", SOLUTIONS, ids=LESSONS)
def test_launch_buttons_open_the_student_notebook(site, solution):
    """Binder (with .binder/ installing the course), not Colab: there imgrec_lib would be missing."""
    lesson = solution.stem
    target = f"lessons/{lesson}/{lesson}.ipynb"
    text = page(lesson).read_text(encoding="utf-8")
    assert "colab.research.google.com" not in text
    binder = re.search(r'href="(https://mybinder\.org/v2/gh/[^"]+)"', text)
    assert binder and binder.group(1).endswith("lab/tree/" + target), "no Binder button for the student notebook"
    assert (ROOT / target).exists(), f"the buttons open {target}, which is missing: run make lessons"


def test_pages_load_nothing_from_the_network(site):
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        links = re.findall(r'<link\b[^>]*rel="(?:stylesheet|preload)"[^>]*href="((?:https?:)?//[^"]+)"', text)
        scripts = re.findall(r'<script\b[^>]*src="((?:https?:)?//[^"]+)"', text)
        images = re.findall(r'<img\b[^>]*src="((?:https?:)?//[^"]+)"', text)
        assert not (links or scripts or images), f"{path.relative_to(site)} loads {links + scripts + images}"


def test_mathjax_is_vendored_and_pinned(site):
    lock = json.loads((BOOK / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/mathjax"]["version"]
    assert version.startswith("3."), f"MathJax 3 expected, the lock file has {version}"
    assert json.loads((BOOK / "package.json").read_text())["dependencies"]["mathjax"] == version
    text = (site / "intro.html").read_text(encoding="utf-8")
    src = re.search(r'<script[^>]*src="([^"?]*tex-chtml\.js)[^"]*"', text)
    assert src, "the pages do not load MathJax's tex-chtml.js"
    assert (site / src.group(1)).exists()
    assert (site / "_static" / "es5" / "output" / "chtml" / "fonts" / "woff-v2").is_dir(), "MathJax fonts missing"


def test_library_reference_documents_every_module(site):
    for module in build_pages.library_modules():
        path = site / "reference" / f"imgrec_lib.{module}.html"
        assert path.exists(), f"no reference page for imgrec_lib.{module}"
        objects = re.findall(rf'<dt class="sig sig-object py" id="imgrec_lib\.{module}\.', path.read_text(encoding="utf-8"))
        assert objects, f"the reference page of imgrec_lib.{module} documents nothing"


def test_course_map_and_instructor_guide(site):
    course_map = (site / "course_map.html").read_text(encoding="utf-8")
    for lesson in LESSONS:
        assert f'href="lessons/{lesson}/{lesson}.html"' in course_map, f"the course map does not link {lesson}"
    guide = ROOT / "docs" / "INSTRUCTOR_GUIDE.md"
    built = site / "guides" / "instructor_guide.html"
    if guide.exists():
        title = next(line[2:].strip() for line in guide.read_text().splitlines() if line.startswith("# "))
        assert built.exists(), "docs/INSTRUCTOR_GUIDE.md has no page: run make book"
        shown = text_of(built.read_text(encoding="utf-8")).replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
        assert title in shown, f"the guide's page does not show its title {title!r}"
    else:
        assert not built.exists(), "a guide page without docs/INSTRUCTOR_GUIDE.md"


def test_build_pages_runs_offline_without_executing():
    """build_pages.py imports nothing that runs a kernel, and is fast: a page per lesson in seconds."""
    source = (BOOK / "build_pages.py").read_text()
    assert "ExecutePreprocessor" not in source and "nbclient" not in source
    config = (BOOK / "_config.yml").read_text()
    assert re.search(r'execute_notebooks:\s*"?off"?', config)
    result = subprocess.run([sys.executable, str(BOOK / "build_pages.py")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{len(LESSONS)} lesson pages" in result.stdout
