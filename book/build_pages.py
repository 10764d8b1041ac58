"""Write the course website's generated pages into book/ (run by `make book` before jupyter-book).

Executes nothing: every page is made from files already in the repository.

- `lessons/NN_topic/NN_topic.ipynb`: the instructor notebook `solutions/NN_topic/NN_topic.ipynb`
  with its stored outputs and figures, passed through nbgrader's own `ClearSolutions` (answer code
  becomes the student stub) and `ClearHiddenTests`; hidden test cells are dropped. The page path
  mirrors the student notebook's path in the repository, so the Binder launch button
  opens `lessons/NN_topic/NN_topic.ipynb`, the learner's version. Under each numbered question of
  the section "## Questions to think about" goes its worked answer from `answers/NN_topic.md`
  (hand-written, a section `## N` per question), collapsed in a dropdown: on the site only,
  never in the notebooks.
- `course_map.md`: the section "## The course" of README.md, lesson numbers linked to their pages.
- `guides/*.md`: docs/INSTRUCTOR_GUIDE.md and docs/LESSON_GUIDE.md, whichever exist.
- `reference/*.md`: one autodoc page per `imgrec_lib` module.

Relative links to repository files that are not pages of the site become links to the file on
GitHub (`REPOSITORY` below; `_config.yml` holds the same URL for the launch buttons).
Files are rewritten only when their content changes, so Sphinx rebuilds only what changed.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
from traitlets.config.loader import PyFileConfigLoader

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
REPOSITORY = "https://github.com/imgrec-course/imgrec"  # maintainers: also set in _config.yml
BRANCH = "main"

# Generated paths (all git-ignored); everything else in book/ is hand-written.
GENERATED = ["lessons", "guides", "reference", "course_map.md"]
GUIDES = {"INSTRUCTOR_GUIDE.md": "instructor_guide.md"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "*An interactive widget appears here when you run the notebook "
    "(the launch button at the top of the page opens it in Binder).*"
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg"}
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
ANSWERS = BOOK / "answers"
QUESTIONS = "## Questions to think about"
QUESTION = re.compile(r"^(\d+)\. ", re.M)  # a numbered question, at the start of a line


def write_if_changed(path: Path, text: str) -> None:
    """Write text to path unless the file already holds exactly that text."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def remove_page(source: Path) -> None:
    """Remove a generated page that has no source any more, and its built HTML (Sphinx keeps it)."""
    built = BOOK / "_build" / "html" / source.relative_to(BOOK).with_suffix(".html")
    for path in (source, built):
        if path.exists():
            path.unlink()


def rewrite_links(text: str, repo_path: str, book_path: str, pages: set[str]) -> str:
    """Point the relative links of a Markdown text at the right place in the site.

    repo_path: where the text lives in the repository (links are written relative to it);
    book_path: where it lives in book/; pages: repository paths that are also site pages,
    at the same path in book/ (the lessons). Other relative links go to the file on GitHub.
    """
    def fix(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "/")):
            return match.group(0)  # absolute URL, anchor or site-absolute path
        path, _, anchor = target.partition("#")
        in_repo = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), path))
        if in_repo.startswith(".."):
            return match.group(0)
        if in_repo in pages:
            new = posixpath.relpath(in_repo, posixpath.dirname(book_path) or ".")
        else:
            kind = "raw" if match.group(1).startswith("!") else "blob"
            new = f"{REPOSITORY}/{kind}/{BRANCH}/{in_repo}"
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return LINK.sub(fix, text)


def read_answers(path: Path) -> dict[int, str]:
    """The worked answers in path, {question number: Markdown}, from its sections '## N'."""
    if not path.exists():
        return {}
    parts = re.split(r"^## (\d+)[ \t]*$", path.read_text(encoding="utf-8"), flags=re.M)
    return {int(number): body.strip() for number, body in zip(parts[1::2], parts[2::2])}


def question_numbers(source: str) -> list[int]:
    """The numbers of the questions in a Markdown cell's section '## Questions to think about'."""
    start = source.find(QUESTIONS + "\n")
    if start < 0:
        return []
    section = re.split(r"^## ", source[start + len(QUESTIONS):], maxsplit=1, flags=re.M)[0]
    return [int(n) for n in QUESTION.findall(section)]


def add_answers(source: str, answers: dict[int, str], where: str = "") -> str:
    """Put each answer under its question, in a collapsed dropdown inside the question's list item.

    where names the answers' file in error messages: an answer without its question would vanish.
    """
    numbers = question_numbers(source)
    if not numbers or not answers:
        return source
    orphans = sorted(set(answers) - set(numbers))
    if orphans:
        raise SystemExit(f"{where}: answers {orphans} have no question under '{QUESTIONS}'")
    start = source.find(QUESTIONS + "\n") + len(QUESTIONS) + 1
    end = re.search(r"^## ", source[start:], flags=re.M)
    end = start + end.start() if end else len(source)
    items = list(QUESTION.finditer(source, start, end))
    out = [source[:items[0].start()]]
    for item, following in zip(items, items[1:] + [None]):
        text = source[item.start():following.start() if following else end].rstrip("\n")
        body = answers.get(int(item.group(1)))
        if body is not None:
            indent = " " * len(item.group(0))  # the list item's content column
            dropdown = f":::{{dropdown}} Answer\n{body}\n:::"
            text += "\n\n" + "\n".join(indent + line if line else "" for line in dropdown.splitlines())
        out.append(text + ("\n\n" if following or end < len(source) else "\n"))
    return "".join(out) + source[end:]


def nbgrader_config():
    """The course's nbgrader_config.py, so the stubs are exactly those of the student release."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def is_hidden_test_cell(cell) -> bool:
    return "### BEGIN HIDDEN TESTS" in cell.source


def site_notebook(solution: Path, pages: set[str]):
    """The page for one lesson: the instructor notebook, outputs kept, no solutions, no hidden tests.

    Answer code is replaced by the student stub (nbgrader's ClearSolutions), hidden test cells are
    dropped, widget views (which need a kernel) become a short note, relative links are fixed, and
    the worked answers of book/answers/NN_topic.md go under their questions, collapsed.
    """
    nb = nbformat.read(solution, as_version=4)
    nb.cells = [cell for cell in nb.cells if not is_hidden_test_cell(cell)]
    config = nbgrader_config()
    resources: dict = {}
    nb, resources = ClearSolutions(config=config).preprocess(nb, resources)
    nb, resources = ClearHiddenTests(config=config).preprocess(nb, resources)
    nb.metadata.pop("widgets", None)  # stored widget state would pull widget JavaScript from a CDN
    page = f"lessons/{solution.parent.name}/{solution.name}"
    answers_file = ANSWERS / f"{solution.stem}.md"
    answers = read_answers(answers_file)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, page, page, pages)
            cell.source = add_answers(cell.source, answers, str(answers_file.relative_to(ROOT)))
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                output["data"] = {"text/markdown": WIDGET_NOTE, "text/plain": WIDGET_NOTE}
    return nb


def lesson_solutions() -> list[Path]:
    """The instructor notebooks, solutions/NN_topic/NN_topic.ipynb, in lesson order."""
    return sorted(p for p in ROOT.glob("solutions/[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)


def build_lessons(solutions: list[Path], pages: set[str]) -> None:
    for solution in solutions:
        folder = BOOK / "lessons" / solution.parent.name
        nb = site_notebook(solution, pages)
        write_if_changed(folder / solution.name, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        for extra in solution.parent.iterdir():  # pictures a lesson's Markdown shows
            if extra.suffix.lower() in IMAGE_SUFFIXES:
                shutil.copy2(extra, folder / extra.name)


def course_map(readme: str, pages: set[str]) -> str:
    """The README's section '## The course', each lesson number linked to its page."""
    match = re.search(r"^## The course\n(.*?)(?=^## )", readme, re.S | re.M)
    if match is None:
        raise SystemExit("README.md has no section '## The course': the course map comes from it")
    body = rewrite_links(match.group(1), "README.md", "course_map.md", pages)
    by_number = {p.split("/")[1][:2]: p for p in pages}

    def link(row: re.Match) -> str:
        number = row.group(1)
        page = by_number.get(number)
        return f"| [{number}]({page}) |" if page else row.group(0)

    body = re.sub(r"^\| (\d\d) \|", link, body, flags=re.M)
    return "# The course map\n" + body


def build_guides(pages: set[str]) -> None:
    for name, page in GUIDES.items():
        source = ROOT / "docs" / name
        target = BOOK / "guides" / page
        if source.exists():
            text = rewrite_links(source.read_text(encoding="utf-8"), f"docs/{name}", f"guides/{page}", pages)
            write_if_changed(target, text)
        elif target.exists():
            remove_page(target)


def library_modules() -> list[str]:
    """The public modules of imgrec_lib (every .py file but __init__ and __main__)."""
    return sorted(p.stem for p in (ROOT / "imgrec_lib").glob("*.py") if not p.stem.startswith("_"))


def build_reference() -> None:
    modules = library_modules()
    folder = BOOK / "reference"
    for module in modules:
        write_if_changed(
            folder / f"imgrec_lib.{module}.md",
            f"# `imgrec_lib.{module}`\n\n```{{eval-rst}}\n.. automodule:: imgrec_lib.{module}\n"
            "   :members:\n```\n",
        )
    for stale in folder.glob("imgrec_lib.*.md"):
        if stale.stem.split(".", 1)[1] not in modules:
            remove_page(stale)
    write_if_changed(
        folder / "index.md",
        "# Library reference\n\n"
        "What the lessons build, cleaned up, so that later lessons (and you) can import it: "
        "`from imgrec_lib import conv`. Each page is made from the docstrings of one module.\n",
    )


def main() -> int:
    solutions = lesson_solutions()
    if not solutions:
        raise SystemExit("no instructor notebooks found under solutions/NN_topic/NN_topic.ipynb")
    pages = {f"lessons/{p.parent.name}/{p.name}" for p in solutions}
    for stale in (BOOK / "lessons").glob("*/*.ipynb"):
        if f"lessons/{stale.parent.name}/{stale.name}" not in pages:
            remove_page(stale)
            shutil.rmtree(stale.parent)
    build_lessons(solutions, pages)
    write_if_changed(BOOK / "course_map.md", course_map((ROOT / "README.md").read_text(encoding="utf-8"), pages))
    build_guides(pages)
    build_reference()
    print(f"book/: {len(solutions)} lesson pages, {len(library_modules())} reference pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
