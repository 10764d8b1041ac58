"""Worked answers for self-learners: book/answers/NN_topic.md, shown on the lesson pages only.

Every question of a lesson's section "Questions to think about" has an answer and every answer a
question; on the built page each answer sits collapsed (a closed <details>) in its question's list
item, and opens on a click with its math rendered (a slow browser check); no student notebook in
lessons/ holds answer text. The site is built by `make book` (a missing site is built here, as in
test_book.py).
"""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SITE = BOOK / "_build" / "html"
SOLUTIONS = sorted(p for p in ROOT.glob("solutions/[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)

spec = importlib.util.spec_from_file_location("build_pages", BOOK / "build_pages.py")
build_pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_pages)


def questions(solution: Path) -> list[int]:
    """The question numbers of a lesson, from its Markdown cells."""
    nb = nbformat.read(solution, as_version=4)
    return [n for cell in nb.cells if cell.cell_type == "markdown" for n in build_pages.question_numbers(cell.source)]


WITH_QUESTIONS = [p for p in SOLUTIONS if questions(p)]


def plain(text: str) -> str:
    """Text as a reader compares it: typographic quotes and dashes back to ASCII, spaces collapsed."""
    for fancy, ascii_ in {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "--",
                          "\u2014": "---", "\u2026": "...", "\xa0": " "}.items():
        text = text.replace(fancy, ascii_)
    return " ".join(text.split())


def phrases(markdown: str) -> list[str]:
    """Runs of plain prose in an answer (no math, code or markup), 30 characters or longer."""
    runs = re.split(r"\$[^$]*\$|`[^`]*`|[*_\[\]()\\{}<>|#]", markdown)
    return [plain(run).strip(" ,.;:") for run in runs if len(plain(run).strip(" ,.;:")) >= 30]


def text_of(html_text: str) -> str:
    return plain(html.unescape(re.sub(r"<[^>]+>", " ", html_text)))


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        subprocess.run(["make", "book"], cwd=ROOT, check=True)
    return SITE


# ---- the helpers of build_pages.py ---------------------------------------------------------------

CELL = """## Summary

- a point

## Questions to think about

1. Why is the sky blue? Think of
   the scattering.
2. How big is $n$?

## Next

Lesson 02.
"""


def test_read_answers_takes_one_section_per_number(tmp_path):
    path = tmp_path / "01_demo.md"
    path.write_text("# Lesson 01: answers\n\nIntro.\n\n## 1\n\nRayleigh.\n\n## 2\n\n$n = 3$, and\nso on.\n")
    assert build_pages.read_answers(path) == {1: "Rayleigh.", 2: "$n = 3$, and\nso on."}
    assert build_pages.read_answers(tmp_path / "missing.md") == {}


def test_add_answers_puts_each_answer_in_a_dropdown_inside_its_question():
    assert build_pages.question_numbers(CELL) == [1, 2]
    text = build_pages.add_answers(CELL, {1: "Rayleigh\nscattering.", 2: "$n = 3$."})
    assert text.startswith(CELL.split("1. Why")[0]) and text.endswith("## Next\n\nLesson 02.\n")
    first = ("1. Why is the sky blue? Think of\n   the scattering.\n\n"
             "   :::{dropdown} Answer\n   Rayleigh\n   scattering.\n   :::\n")
    assert first in text, "the answer is indented into the question's list item, right after it"
    assert "2. How big is $n$?\n\n   :::{dropdown} Answer\n   $n = 3$.\n   :::\n\n## Next" in text
    assert build_pages.add_answers(CELL, {}) == CELL
    assert build_pages.add_answers("## Summary\n\n1. no questions\n", {1: "x"}) == "## Summary\n\n1. no questions\n"
    with pytest.raises(SystemExit, match=r"answers \[3\] have no question"):
        build_pages.add_answers(CELL, {1: "a", 3: "c"}, "book/answers/01_demo.md")


# ---- the answers -------------------------------------------------------------------------------

def test_lessons_have_questions_and_every_answers_file_a_lesson():
    assert len(WITH_QUESTIONS) >= 9, "lessons 00-08 end with 'Questions to think about'"
    lessons = {p.stem for p in SOLUTIONS}
    stray = [p.name for p in (BOOK / "answers").glob("*.md") if p.stem not in lessons]
    assert not stray, f"answers for lessons that do not exist: {stray}"


@pytest.mark.parametrize("solution", WITH_QUESTIONS, ids=[p.stem for p in WITH_QUESTIONS])
def test_every_question_has_an_answer_and_every_answer_a_question(solution):
    numbers = questions(solution)
    answers = build_pages.read_answers(BOOK / "answers" / f"{solution.stem}.md")
    assert numbers == list(range(1, len(numbers) + 1)), f"questions numbered {numbers}"
    assert sorted(answers) == numbers, (
        f"book/answers/{solution.stem}.md answers {sorted(answers)}, the lesson asks {numbers}")
    for number, body in answers.items():
        assert len(body.split()) >= 25, f"answer {number} is too short to be a worked answer: {body!r}"
        assert phrases(body), f"answer {number} has no plain sentence to find on the page"


@pytest.mark.parametrize("solution", WITH_QUESTIONS, ids=[p.stem for p in WITH_QUESTIONS])
def test_page_shows_each_answer_collapsed_under_its_question(site, solution):
    lesson = solution.stem
    page = (site / "lessons" / lesson / f"{lesson}.html").read_text(encoding="utf-8")
    section = re.search(r'<section id="questions-to-think-about">(.*?)</section>', page, re.S)
    assert section, f"{lesson}: no section 'Questions to think about' on the page"
    items = re.split(r"<li>", section.group(1))[1:]
    answers = build_pages.read_answers(BOOK / "answers" / f"{lesson}.md")
    assert len(items) == len(answers), f"{lesson}: {len(items)} questions on the page, {len(answers)} answers"
    for number, item in enumerate(items, start=1):
        details = re.findall(r"<details\b([^>]*)>(.*?)</details>", item, re.S)
        assert len(details) == 1, f"{lesson}, question {number}: expected one dropdown, found {len(details)}"
        attributes, inside = details[0]
        assert not re.search(r"\bopen\b", attributes), f"{lesson}, question {number}: the answer is not collapsed"
        assert "Answer" in re.search(r"<summary\b.*?</summary>", inside, re.S).group(0)
        question = text_of(item[:item.find("<details")])
        assert question, f"{lesson}, question {number}: the dropdown comes before the question"
        shown = text_of(inside)
        for phrase in phrases(answers[number]):
            assert phrase in shown, f"{lesson}, question {number}: {phrase!r} is not in its dropdown"
        if "$" in answers[number]:
            assert 'class="math notranslate nohighlight"' in inside, f"{lesson}, question {number}: math not rendered"


@pytest.mark.parametrize("solution", WITH_QUESTIONS, ids=[p.stem for p in WITH_QUESTIONS])
def test_student_notebook_holds_no_answer(solution):
    lesson = solution.stem
    student = ROOT / "lessons" / lesson / f"{lesson}.ipynb"
    if not student.exists():
        pytest.skip(f"no student notebook {student.relative_to(ROOT)}: run make lessons")
    nb = nbformat.read(student, as_version=4)
    texts = [cell.source for cell in nb.cells]
    texts += [str(output) for cell in nb.cells for output in cell.get("outputs", [])]
    everything = plain("\n".join(texts))
    assert "{dropdown}" not in everything
    for number, body in build_pages.read_answers(BOOK / "answers" / f"{lesson}.md").items():
        leaked = [phrase for phrase in phrases(body) if phrase in everything]
        assert not leaked, f"lessons/{lesson}: the answer to question {number} shows: {leaked[:2]}"


@pytest.mark.slow
def test_answer_opens_on_click_with_its_math_rendered_offline(site):
    """In a browser (Debian's chromium, as in test_browser.py): closed at first, open after a click."""
    playwright = pytest.importorskip("playwright.sync_api")
    import functools
    import http.server
    import threading

    lesson = "06_optimization"  # math in its first answer
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing: run `make browser` (Debian's chromium)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url
                       else route.abort())  # offline: nothing from the network
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/lessons/{lesson}/{lesson}.html")
            page.wait_for_load_state("networkidle")
            dropdown = page.locator("#questions-to-think-about details").first
            answer = dropdown.locator(".sd-summary-content")
            assert not answer.is_visible(), "the first answer is open before anyone clicks"
            dropdown.locator("summary").click()
            answer.wait_for(state="visible", timeout=5000)
            math = "#questions-to-think-about details mjx-container"
            page.wait_for_function(f"() => document.querySelectorAll('{math}').length > 0", timeout=20000)
            first = phrases(build_pages.read_answers(BOOK / "answers" / f"{lesson}.md")[1])[0]
            assert first in plain(answer.inner_text()), f"{first!r} is not in the opened answer"
            browser.close()
    finally:
        server.shutdown()
