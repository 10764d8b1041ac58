"""grading/sanitize.py: a graded notebook that formgrader and the feedback page render without running
student script, with outputs cut to size.

Every attack is checked where it would strike: the notebook is rendered with nbconvert's HTML
exporter and nbgrader's own `formgrade` and `feedback` templates (what formgrader and
`nbgrader generate_feedback` use), and the HTML of the notebook's cells is parsed: no element may
carry an on* attribute, no <script>, <iframe>, <svg>, <style>, <form>, <meta>, <base> ... may come
from the notebook, and no href/src/action may hold javascript:, vbscript: or a data: URL that is not a
PNG or JPEG. The same check finds every attack in the unsanitised notebook, so it can fail.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup, Tag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output, new_raw_cell
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # grading/ is the course's tooling, not an installed package

from grading.sanitize import sanitize_notebook  # noqa: E402

PAYLOAD = "document.title='pwned'"

# Attacks written in a student's markdown cell; each is also tried as a text/html, a text/markdown
# and a stream output.
MARKDOWN_ATTACKS = {
    "img_onerror": f'<img src="data:," onerror="{PAYLOAD}">',
    "img_onerror_unquoted": "<IMG SRC=x OnError=alert(1)>",
    "script": f"<script>{PAYLOAD}</script>",
    "svg_onload": f'<svg onload="{PAYLOAD}"><circle r="4"/></svg>',
    "iframe_srcdoc": f'<iframe srcdoc="<script>{PAYLOAD}</script>"></iframe>',
    "a_javascript": f'<a href="javascript:{PAYLOAD}">click</a>',
    "md_link_javascript": "[click](javascript:alert(1))",
    "md_image_javascript": "![x](javascript:alert(1))",
    "md_autolink_javascript": "<javascript:alert(1)>",
    "md_link_entities": "[click](&#106;avascript&#58;alert(1))",
    "md_link_hex_entities": "[click](&#x6A;&#x61;vascript:alert(1))",
    "md_link_mixed_case": "[click](JaVaScRiPt:alert(1))",
    "md_link_named_entity": "[click](javascript&colon;alert(1))",
    "md_link_backslash": "[click](javascript\\:alert(1))",
    "md_link_spaces": "[click](   javascript:alert(1))",
    "md_link_angle": "[click](<javascript:alert(1)>)",
    "md_link_title": '[click](javascript:alert(1) "a title")',
    "md_reference": "[click][a]\n\n[a]: javascript:alert(1)",
    "md_reference_newline": "[click][a]\n\n[a]:\n  vbscript:msgbox(1)",
    "md_link_vbscript": "[click](vbscript:msgbox(1))",
    "md_link_data_html": "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "md_image_data_svg": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "style_expression": "<style>body { background: url(javascript:alert(1)); width: expression(alert(1)); }</style>",
    "style_attribute": '<p style="background:url(javascript:alert(1))">x</p>',
    "form_action": '<form action="javascript:alert(1)"><button>Save grades</button></form>',
    "button_formaction": '<button formaction="javascript:alert(1)">x</button>',
    "meta_refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base_href": '<base href="javascript:alert(1)//">',
    "object_embed": '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
    "details_ontoggle": f'<details open ontoggle="{PAYLOAD}"><summary>x</summary></details>',
    "math_with_html": "$x\n<div><img src=x onerror=alert(1)></div>\n$",
    "mermaid_block": "```mermaid\n<img src=x onerror=alert(1)>\n```",
    "comment_trick": "<!-- --><img src=x onerror=alert(1)><!-- -->",
    "html_block_then_markdown": "<div>\n\n[x](javascript:alert(1))\n\n</div>",
    "entity_in_html": '<a href="&#106;avascript:alert(1)">x</a>',
    "nested_in_list": "- item\n  <img src=x onerror=alert(1)>\n- [x](javascript:alert(1))",
    "in_blockquote": "> <script>alert(1)</script>\n> [x](javascript:alert(1))",
    "in_table": "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "in_heading": "# <img src=x onerror=alert(1)>",
    "textarea_breakout": "</textarea><script>alert(1)</script>",
}

OUTPUT_ATTACKS = {
    "html_script": {"text/html": f"<script>{PAYLOAD}</script><img src=x onerror=\"{PAYLOAD}\">"},
    "javascript": {"application/javascript": PAYLOAD},
    "svg_script": {"image/svg+xml":
                   f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PAYLOAD}"><script>{PAYLOAD}</script></svg>'},
    "markdown_html": {"text/markdown": f'<img src=x onerror="{PAYLOAD}"> [x](javascript:alert(1))'},
    "latex_href": {"text/latex": r"$\href{javascript:alert(1)}{x}$"},
    "widget_view": {"application/vnd.jupyter.widget-view+json":
                    {"model_id": "x", "version_major": 2, "version_minor": 0}},
    "html_with_plain": {"text/html": "<script>alert(1)</script>", "text/plain": "<IPython.core.display.HTML object>"},
}

DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "svg", "math", "style", "form", "meta", "base", "link",
                  "frame", "frameset", "applet", "template", "noscript", "xmp", "textarea", "button", "details"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "srcdoc", "xlink:href", "poster", "background"}


# ---- rendering as formgrader and the feedback page do ------------------------------------------

TEMPLATES = ("formgrade", "feedback")


@functools.cache
def exporter(template: str) -> HTMLExporter:
    """nbconvert's HTML exporter set up as formgrader ("formgrade") or `nbgrader generate_feedback`
    ("feedback") sets it up."""
    from nbgrader.server_extensions.formgrader import handlers

    config = Config()
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.HTMLExporter.extra_template_paths = [
        str(Path(handlers.template_path).parent / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
    return HTMLExporter(config=config)


def render(nb, template: str) -> str:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # what nbgrader's GetGrades puts in for the feedback page
        grader = cell.metadata.get("nbgrader")
        if grader and (grader.get("grade") or grader.get("task")):
            grader.setdefault("score", 0.0)
            grader.setdefault("points", 1.0)
    resources = {"assignment_id": "lesson", "notebook_id": "lesson", "submission_id": "abc", "index": 0,
                 "total": 1, "base_url": "", "student": "student", "last_name": None, "first_name": None,
                 "notebook_path": "", "nbgrader": {"notebook": "lesson", "score": 0, "max_score": 1, "late_penalty": 0}}
    html, _ = exporter(template).from_notebook_node(nb, resources=resources)
    return html


def element_problems(element) -> list[str]:
    """Dangerous elements, attributes and URLs in `element` and below."""
    problems = []
    for node in [element, *element.find_all(True)]:
        if node.name in DANGEROUS_TAGS and not template_control(node):
            problems.append(f"<{node.name}>")
        for name, value in node.attrs.items():
            value = " ".join(value) if isinstance(value, list) else str(value)
            if name.lower().startswith("on"):
                problems.append(f"<{node.name} {name}>")
            if name.lower() in URL_ATTRIBUTES:
                url = re.sub(r"[\x00-\x20]", "", value).lower()
                if url.startswith(("javascript:", "vbscript:")) or (
                        url.startswith("data:") and not re.match(r"data:image/(png|jpeg)[;,]", url)):
                    problems.append(f"<{node.name} {name}={value[:50]!r}>")
            if name == "style" and re.search(r"url\(|expression|javascript", value, re.I):
                problems.append(f"<{node.name} style={value[:50]!r}>")
            if name in ("width", "height") and not re.fullmatch(r"\d+", value):
                problems.append(f"<{node.name} {name}={value[:50]!r}>")
    return problems


def template_control(node) -> bool:
    """Formgrader's own score buttons and comment box around a graded cell."""
    classes = set(node.get("class", []))
    return (node.name == "button" and bool(classes & {"mark-graded", "full-credit", "no-credit"})
            or node.name == "textarea" and "comment" in classes)


def cells_in_page(html: str) -> list:
    """The top-level nodes of the notebook's cells in a formgrader or feedback page."""
    soup = BeautifulSoup(html, "html.parser")
    container = soup.select("#notebook-container")[-1]  # the template's own outer one holds it
    assert container.select(".cell"), "the notebook's cells should be in the page"
    return list(container.children)


def notebook_problems(html: str) -> list[str]:
    """Dangerous elements, attributes and URLs in the notebook's cells (not in the template's page)."""
    return [p for node in cells_in_page(html) if isinstance(node, Tag) for p in element_problems(node)]


def problems_everywhere(nb) -> dict[str, list[str]]:
    return {t: p for t in TEMPLATES if (p := notebook_problems(render(nb, t)))}


def marker(i: int) -> str:
    return f"marker-{i}-of-the-test"


def problems_per_cell(nb, template: str) -> list[list[str]]:
    """Problems of each cell that follows a marker cell (see with_markers), in order."""
    found: list[list[str]] = []
    for node in cells_in_page(render(nb, template)):
        if isinstance(node, Tag) and re.fullmatch(r"\s*marker-\d+-of-the-test\s*", node.get_text()):
            found.append([])
        elif isinstance(node, Tag):
            found[-1] += element_problems(node)
    return found


def with_markers(cells) -> list:
    """A marker cell before each cell, to tell the cells apart in the page (raw cells have no <div>)."""
    return [c for i, cell in enumerate(cells) for c in (new_markdown_cell(marker(i)), cell)]


def student_notebook(*cells):
    nb = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "cells": list(cells)})  # not validated
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python", "pygments_lexer": "ipython3"}}
    return nb


def display(kind: str, data: dict, **metadata):
    if kind == "execute_result":
        return new_output("execute_result", data=data, metadata=metadata, execution_count=1)
    return new_output("display_data", data=data, metadata=metadata)


# ---- attacks ------------------------------------------------------------------------------------

def attack_cell(where: str, name: str, markdown: str):
    """`markdown` where a student can put it: a cell, a graded markdown answer, an output."""
    if where == "markdown cell":
        return new_markdown_cell(markdown)
    if where == "markdown answer cell":
        return new_markdown_cell(markdown, metadata={"nbgrader": {
            "grade": True, "solution": True, "locked": False, "grade_id": f"answer_{name}", "points": 1,
            "schema_version": 3}})
    if where == "raw cell":
        return new_raw_cell(markdown)
    outputs = {
        "text/html output": display("display_data", {"text/html": markdown}),
        "text/markdown output": display("execute_result", {"text/markdown": markdown}),
        "stream output": new_output("stream", name="stdout", text=markdown),
        "text/plain output": display("execute_result", {"text/plain": markdown}),
        "error output": new_output("error", ename="E", evalue=markdown, traceback=[markdown]),
    }
    return new_code_cell("x", outputs=[outputs[where]])


WHERE = ["markdown cell", "markdown answer cell", "raw cell", "text/html output", "text/markdown output",
         "stream output", "text/plain output", "error output"]
# The attacks that are HTML (the others are markdown syntax, inert in a text/html output).
HTML_ATTACKS = {n for n, m in MARKDOWN_ATTACKS.items() if re.search(r"<[a-z]", m, re.I)
                and n not in ("md_autolink_javascript", "md_link_angle", "html_block_then_markdown")}


def attack_notebook(where: str):
    names = sorted(MARKDOWN_ATTACKS)
    return names, student_notebook(*with_markers(attack_cell(where, n, MARKDOWN_ATTACKS[n]) for n in names))


@pytest.mark.parametrize("where", WHERE)
def test_markdown_attacks_are_neutralised_in_cells_and_outputs(where):
    names, nb = attack_notebook(where)
    clean = sanitize_notebook(nb)
    for template in TEMPLATES:
        found = dict(zip(names, problems_per_cell(clean, template), strict=True))
        assert not {n: p for n, p in found.items() if p}, f"in a {where}, {template}"


@pytest.mark.parametrize("where", WHERE)
def test_the_attacks_are_real_in_the_unsanitised_notebook(where):
    """The control: rendered as submitted, each attack reaches the page, so the check above can fail.
    Stream, text/plain and error outputs are escaped by the templates: there, nothing reaches it."""
    names, nb = attack_notebook(where)
    found = dict(zip(names, problems_per_cell(nb, "formgrade"), strict=True))
    if where in ("markdown cell", "markdown answer cell", "text/markdown output"):
        expected = set(names)
    elif where == "text/html output":
        expected = HTML_ATTACKS
    else:
        expected = set()
    if where != "raw cell":  # nbconvert passes raw cells through bleach: some attacks survive, some not
        assert {n for n in names if found[n]} == expected


def test_relative_links_are_not_kept():
    """formgrader serves any file beside the graded notebook at a relative address, from the
    instructor's origin and unsandboxed: a student's `notes.html` would run there when clicked."""
    links = "[my notes](notes.html) ![plot](plot.svg) [x](//evil.example/x) [api](/api/contents) [top](#top)"
    clean = sanitize_notebook(student_notebook(new_markdown_cell(links)))
    soup = BeautifulSoup(render(clean, "formgrade"), "html.parser").select("#notebook-container")[-1]
    assert [a["href"] for a in soup.select(".cell a:not(.anchor-link)")] == ["#top"]
    assert not soup.select(".cell img")
    assert "[my notes](notes.html)" in soup.get_text()


def test_student_text_stays_readable_as_text():
    nb = sanitize_notebook(student_notebook(new_markdown_cell(MARKDOWN_ATTACKS["img_onerror"] + "\n\nMy answer.")))
    text = BeautifulSoup(render(nb, "formgrade"), "html.parser").select_one("#notebook-container").get_text()
    assert '<img src="data:," onerror=' in text and "My answer." in text


@pytest.mark.parametrize("name", sorted(OUTPUT_ATTACKS))
@pytest.mark.parametrize("kind", ["display_data", "execute_result"])
def test_unsafe_output_types_are_removed(name, kind):
    nb = student_notebook(new_code_cell("x", outputs=[display(kind, OUTPUT_ATTACKS[name])]))
    if name in ("html_script", "javascript", "svg_script", "markdown_html"):
        assert problems_everywhere(nb), "the control: unsanitised, the output is dangerous"
    clean = sanitize_notebook(nb)
    assert not problems_everywhere(clean)
    (output,) = clean.cells[0].outputs
    assert set(output.data) == {"text/plain"}
    if "text/plain" in OUTPUT_ATTACKS[name]:
        assert output.data["text/plain"] == OUTPUT_ATTACKS[name]["text/plain"]
    else:
        removed = next(iter(OUTPUT_ATTACKS[name]))
        assert output.data["text/plain"] == f"[output of type {removed} removed for safety]"


def test_safe_outputs_are_kept():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 50).decode()
    outputs = [new_output("stream", name="stdout", text="loss 0.5\n"),
               new_output("stream", name="stderr", text="a warning\n"),
               display("execute_result", {"text/plain": "tensor([1, 2])"}),
               display("display_data", {"image/png": png, "text/plain": "<Figure>"}, **{"image/png": {"width": 200}}),
               new_output("error", ename="ValueError", evalue="bad", traceback=["\x1b[31mValueError\x1b[0m: bad"])]
    nb = student_notebook(new_code_cell("plot()", outputs=outputs))
    clean = sanitize_notebook(nb)
    assert [dict(o) for o in clean.cells[0].outputs] == [dict(o) for o in nbformat.from_dict(outputs)]
    soup = BeautifulSoup(render(clean, "feedback"), "html.parser")
    assert soup.select_one(".output_png img")["width"] == "200"
    assert "loss 0.5" in soup.select_one(".output_stdout").get_text()


@pytest.mark.filterwarnings("ignore:No lexer found")
def test_metadata_attacks_are_removed():
    """Fields the templates write unescaped or hand to script: image sizes, execution counts,
    grade ids, widget state, cell ids, output file names, attachments that are not PNG/JPEG."""
    png = base64.b64encode(b"\x89PNG").decode()
    svg = base64.b64encode(f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PAYLOAD}"/>'.encode()).decode()
    image = display("display_data", {"image/png": "!!notbase64", "text/plain": "x"})
    sized = display("display_data", {"image/png": png},
                    **{"image/png": {"width": f"1 onerror={PAYLOAD}", "height": "2 onload=x",
                                     "alt": '"><script>x</script>'}})
    sized["metadata"]["filenames"] = {"image/png": "javascript:alert(1)"}
    html = display("display_data", {"text/html": "<b>x</b>"}, **{"text/html": {"isolated": True}})
    code = new_code_cell("x", outputs=[image, sized, html, display("execute_result", {"text/plain": "1"})],
                         metadata={"tags": ['"><script>alert(1)</script>', "ok"], "magics_language": "html",
                                   "alt": "x"})
    graded = new_code_cell("y", metadata={"nbgrader": {"grade": True, "solution": False, "locked": True,
                                                       "grade_id": f'x"><img src=x onerror="{PAYLOAD}', "points": 1}})
    attached = new_markdown_cell("![a](attachment:a.svg) ![b](attachment:b.png)")
    attached["attachments"] = {"a.svg": {"image/svg+xml": svg}, "b.png": {"image/png": png, "text/html": "<script>"}}
    nb = student_notebook(code, graded, attached)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {
        "model_name": "HTMLModel", "state": {"value": f"<img src=x onerror={PAYLOAD}>"}}}}}
    nb.metadata["language_info"]["pygments_lexer"] = "no-such-lexer"
    nb.metadata["evil"] = {"x": 1}
    assert problems_everywhere(nb), "the control: unsanitised, these fields are dangerous"
    # Fields the templates write unescaped but nbformat's schema checks: nbconvert refuses to render
    # such a notebook at all (formgrader answers 500, feedback fails), so they must be repaired too.
    nb.cells[0]["id"] = '"><script>alert(1)</script>'
    nb.cells[0].execution_count = f"<img src=x onerror={PAYLOAD}>"
    nb.cells[0].outputs[3].execution_count = f"<img src=x onerror={PAYLOAD}>"
    nb.cells.append(nbformat.from_dict({"cell_type": "code", "source": "z", "metadata": {}, "execution_count": None,
                                        "outputs": [{"output_type": "stream", "name": "<script>", "text": "x"},
                                                    {"output_type": "update_display_data", "data": {}}]}))
    nb.metadata["kernelspec"].pop("display_name")

    clean = sanitize_notebook(nb)
    assert not problems_everywhere(clean)
    nbformat.validate(clean)
    assert set(clean.metadata) == {"language_info"}
    assert "pygments_lexer" not in clean.metadata.language_info
    code, graded, attached, last = clean.cells
    assert [dict(o) for o in last.outputs] == [{"output_type": "stream", "name": "stdout", "text": "x"}]
    assert code.execution_count is None and code.outputs[3].execution_count is None
    assert re.fullmatch(r"[\w-]+", code.id)
    assert code.metadata == {"tags": ["ok"]}
    assert code.outputs[0].data == {"text/plain": "x"}  # the image that was not base64 is gone
    assert code.outputs[1].metadata == {"image/png": {"alt": '"><script>x</script>'}}  # escaped by the templates
    assert "nbgrader" not in graded.metadata
    assert set(attached.attachments) == {"a.svg", "b.png"}
    assert attached.attachments["b.png"] == {"image/png": png}
    assert set(attached.attachments["a.svg"]) == {"image/png"}  # a blank placeholder: the markdown still renders
    html = render(clean, "feedback")
    assert "data:image/svg" not in html and "widget-state" not in html


def test_nbgrader_metadata_is_kept_for_formgrader():
    meta = {"grade": True, "solution": True, "locked": False, "grade_id": "conv_output_size", "points": 2,
            "schema_version": 3, "checksum": "abc123", "cell_type": "code"}
    nb = student_notebook(new_code_cell("def f(): pass", metadata={"nbgrader": dict(meta)}),
                          new_markdown_cell("answer", metadata={"nbgrader": {**meta, "cell_type": "markdown",
                                                                             "grade_id": "md"}}))
    nb.metadata["nbgrader"] = {"some": "key"}
    clean = sanitize_notebook(nb)
    assert clean.cells[0].metadata.nbgrader == meta
    assert clean.cells[1].metadata.nbgrader["grade_id"] == "md"
    assert clean.metadata.nbgrader == {"some": "key"}
    soup = BeautifulSoup(render(clean, "formgrade"), "html.parser")
    assert soup.select_one("input.score#conv_output_size") is not None


def test_code_sources_are_kept_and_shown_escaped():
    source = f"s = '</pre></div><script>{PAYLOAD}</script><img src=x onerror=alert(1)>'\nprint(s)"
    nb = student_notebook(new_code_cell(source, metadata={"nbgrader": {
        "grade": False, "solution": True, "locked": False, "grade_id": "answer", "schema_version": 3}}),
        new_code_cell(source))
    clean = sanitize_notebook(nb)
    assert [c.source for c in clean.cells] == [source, source]
    for template in ("formgrade", "feedback"):
        html = render(clean, template)
        assert not notebook_problems(html)
        text = BeautifulSoup(html, "html.parser").select_one("#notebook-container").get_text()
        assert text.count("<script>document.title") == 2, "the code should be shown as written"


# ---- ordinary and trusted markdown --------------------------------------------------------------

ORDINARY = """# Lesson 01: my answer

## Why it works

The output size is $\\lfloor (H + 2p - k) / s \\rfloor + 1$, and for $a < b$:

$$\\sum_{i=1}^{n} x_i^2 < \\infty$$

- a *padded* input keeps the **size**
- `conv2d(x, w)` runs in $O(N k^2)$
  1. nested item

> a quote, with a [link](https://pytorch.org/docs/stable/nn.html#conv2d) and <https://example.com>

| kernel | stride | output |
|:------:|-------:|--------|
| 3      | 1      | 26     |

```python
if a < b and c > d:
    print("<ok>")
```

Line one<br>line two, H<sub>2</sub>O, 2<sup>10</sup>, <b>bold</b>.

- [x] done
- [ ] to do

![a plot](https://example.com/plot.png "plot")
"""


def test_ordinary_markdown_is_unchanged_and_renders_as_markdown():
    nb = student_notebook(new_markdown_cell(ORDINARY))
    clean = sanitize_notebook(nb)
    assert clean.cells[0].source == ORDINARY, "ordinary markdown should not change at all"
    soup = BeautifulSoup(render(clean, "formgrade"), "html.parser").select_one("#notebook-container")
    assert soup.select_one("h1").get_text().startswith("Lesson 01") and soup.select_one("h2")
    assert [li.get_text(" ", strip=True)[:9] for li in soup.select("ul > li")][:2] == ["a padded ", "conv2d(x,"]
    assert soup.select_one("em").get_text() == "padded" and soup.select_one("strong").get_text() == "size"
    assert soup.select_one("code").get_text() == "conv2d(x, w)"
    assert soup.select_one('a[href="https://pytorch.org/docs/stable/nn.html#conv2d"]').get_text() == "link"
    assert soup.select_one('a[href="https://example.com"]')
    assert [th.get_text() for th in soup.select("table th")] == ["kernel", "stride", "output"]
    assert soup.select_one("blockquote")
    text = soup.get_text()
    assert "$\\lfloor (H + 2p - k) / s \\rfloor + 1$" in text and "$a < b$" in text, "math reaches MathJax as written"
    assert "\\sum_{i=1}^{n} x_i^2 < \\infty" in text
    assert 'if a < b and c > d:\n    print("<ok>")' in soup.select_one(".highlight").get_text()
    assert soup.select_one("sub").get_text() == "2" and soup.select_one("br") is not None
    assert len(soup.select("input[type=checkbox]")) == 2
    assert soup.select_one('img[src="https://example.com/plot.png"]')


def test_trusted_instructor_cells_are_unchanged():
    instructor = ('<div class="alert alert-info"><b>Note</b> <script>MathJax.typeset()</script></div>\n\n'
                  "[docs](javascript:void(0))")
    raw = "<b>instructor raw</b>"
    nb = student_notebook(new_markdown_cell(instructor), new_raw_cell(raw), new_markdown_cell(instructor + " "),
                          new_raw_cell(raw + " "))
    clean = sanitize_notebook(nb, {instructor, raw})
    assert clean.cells[0].source == instructor and clean.cells[1].source == raw
    assert clean.cells[2].source != instructor + " ", "a student's edit of an instructor cell is not trusted"
    assert "<b>" not in clean.cells[3].source
    assert not notebook_problems(render(student_notebook(*clean.cells[2:]), "formgrade"))


def test_the_input_notebook_is_not_changed():
    nb = student_notebook(new_markdown_cell(MARKDOWN_ATTACKS["script"]),
                          new_code_cell("x", outputs=[display("display_data", OUTPUT_ATTACKS["html_script"])]))
    before = copy.deepcopy(nb)
    sanitize_notebook(nb)
    assert nb == before


# ---- size ---------------------------------------------------------------------------------------

def size(output) -> int:
    return len(json.dumps(output, ensure_ascii=False).encode())


def test_a_10_mb_stream_output_is_cut_to_the_limit_with_a_note():
    text = "".join(f"step {i}: loss 0.{i % 97:02d}\n" for i in range(500_000))
    assert len(text) > 10_000_000
    nb = student_notebook(new_code_cell("train()", outputs=[new_output("stream", name="stdout", text=text)]))
    (output,) = sanitize_notebook(nb).cells[0].outputs
    assert size(output) <= 100_000
    assert output.text.startswith("step 0: loss 0.00\nstep 1: loss 0.01\n")
    assert size(output) > 90_000, "as much text as fits is kept"
    note = f"[output cut: {size(nb.cells[0].outputs[0]):,} bytes, over the 100,000-byte limit]"
    assert output.text.rstrip().endswith(note)


def test_large_images_text_and_errors_are_cut_and_the_notebook_total_is_kept():
    big_png = base64.b64encode(b"\x89PNG" + bytes(300_000)).decode()
    outputs = [display("display_data", {"image/png": big_png, "text/plain": "<Figure>"}),
               display("execute_result", {"text/plain": "é\x00" * 200_000, "text/html": "<b>x</b>"}),
               new_output("error", ename="RecursionError", evalue="deep",
                          traceback=[f"frame {i}" + "\x1b[0m" * 50 for i in range(20_000)] + ["RecursionError: deep"])]
    nb = student_notebook(new_code_cell("x", outputs=outputs))
    image, text, error = sanitize_notebook(nb, max_output_bytes=50_000).cells[0].outputs
    assert all(size(o) <= 50_000 for o in (image, text, error))
    note = f"[image/png output removed: {size(big_png):,} bytes, over the 50,000-byte limit]"
    assert image.data == {"text/plain": f"<Figure>\n{note}"}
    assert set(text.data) == {"text/plain"} and "[output cut: " in text.data["text/plain"]
    assert error.traceback[0].startswith("[output cut: ") and error.traceback[-1] == "RecursionError: deep"

    many = [new_output("stream", name="stdout", text="x" * 90_000) for _ in range(10)]
    clean = sanitize_notebook(student_notebook(new_code_cell("x", outputs=many)), max_total_bytes=500_000)
    outputs = clean.cells[0].outputs
    kept = [o for o in outputs if len(o.text) == 90_000]
    assert len(kept) == 5 and outputs[:5] == kept
    note = "[output removed: the outputs of this notebook passed the 500,000-byte limit]\n"
    assert all(o.text == note for o in outputs[5:])
    assert sum(size(o) for o in outputs) <= 500_000


def test_huge_sources_are_cut():
    code = "x = 1\n" * 400_000
    markdown = "word <b>x</b> < y " * 10_000
    nb = student_notebook(new_code_cell(code), new_markdown_cell(markdown), new_raw_cell(markdown))
    clean = sanitize_notebook(nb, max_source_bytes=100_000, max_markdown_bytes=100_000)
    assert all(len(c.source.encode()) <= 100_000 for c in clean.cells)
    assert clean.cells[0].source.startswith("x = 1\n") and "# [source cut: 2,400,000 bytes" in clean.cells[0].source
    assert clean.cells[1].source.startswith("word <b>x</b> &lt; y word")
    assert clean.cells[1].source.endswith("*[text cut: 180,000 bytes, over the 100,000-byte limit]*\n")
    assert clean.cells[2].source.startswith("word &lt;b&gt;x&lt;/b&gt; &lt; y word")
    assert not notebook_problems(render(student_notebook(*clean.cells[1:]), "formgrade"))
    assert sanitize_notebook(clean, max_source_bytes=100_000, max_markdown_bytes=100_000) == clean


def test_student_markdown_has_a_budget_per_cell_and_per_notebook():
    """D4 of an outside tester: rendering markdown to check it took 15-27 s per MB, with no limit on a
    notebook. A cell is cut past max_markdown_bytes, and past max_notebook_markdown_bytes in all the
    cells are notes. Here 30 cells of 40 kB of table took 17.9 s; now 2.5 s."""
    import time

    table = "|a|b|\n|-|-|\n" + "|x|y|\n" * 6_600
    nb = student_notebook(*[new_markdown_cell(f"{table}{i}") for i in range(30)])
    started = time.monotonic()
    clean = sanitize_notebook(nb)
    seconds = time.monotonic() - started
    shown = [c.source for c in clean.cells if not c.source.startswith("*[markdown not shown")]
    assert len(shown) == 10 and all(len(s.encode()) <= 20_000 for s in shown), [len(s) for s in shown]
    assert all(s.startswith("|a|b|") and s.endswith("*[text cut: 39,613 bytes, over the 20,000-byte limit]*\n")
               for s in shown), shown[0][-200:]
    assert clean.cells[10].source == ("*[markdown not shown (39,614 bytes): the student's markdown in this notebook "
                                      "passed the 200,000-byte limit]*\n")
    assert seconds < 6, seconds
    assert sanitize_notebook(clean) == clean


def test_student_markdown_that_is_slow_to_check_has_a_time_budget():
    """Some markdown takes time that grows as the square of its length (`\\begin{a}` over and over: 15 s
    for 100 kB, in nbconvert's renderer too): once checking the notebook's markdown has taken
    max_markdown_seconds, its later cells are notes."""
    import time

    slow = "\\begin{a}" * 2_200  # 19.8 kB: ~0.6 s to check
    nb = student_notebook(*[new_markdown_cell(f"{slow}{i}") for i in range(20)])
    started = time.monotonic()
    clean = sanitize_notebook(nb, max_markdown_seconds=0.5)
    seconds = time.monotonic() - started
    assert clean.cells[0].source.startswith("\\begin{a}")
    assert clean.cells[-1].source == ("*[markdown not shown (19,802 bytes): the student's markdown in this notebook "
                                      "took more than 0.5 s to check]*\n")
    assert seconds < 5, seconds


def test_missing_attachments_are_found_in_one_rendering(monkeypatch):
    """A blank image stands in for each attachment the markdown uses and the cell lacks: they were found
    one rendering at a time (up to 50 renderings of the whole cell: 67 s per MB of such markdown)."""
    from grading import sanitize

    renders = []
    render_markdown = sanitize._render_markdown
    monkeypatch.setattr(sanitize, "_render_markdown", lambda *a: renders.append(1) or render_markdown(*a))
    text = "".join(f"![a](attachment:f{i}.png) " for i in range(40))
    clean = sanitize_notebook(student_notebook(new_markdown_cell(text)))
    assert set(clean.cells[0].attachments) == {f"f{i}.png" for i in range(40)}
    assert clean.cells[0].source == text
    assert len(renders) <= 3, len(renders)
    too_many = "".join(f"![a](attachment:f{i}.png) " for i in range(60))
    clean = sanitize_notebook(student_notebook(new_markdown_cell(too_many)))
    assert clean.cells[0].source.startswith("*[shown as plain text") and not clean.cells[0].get("attachments")


def test_text_utf8_cannot_encode_becomes_a_question_mark():
    """A lone surrogate (`"\\ud800"` in the file's JSON is valid JSON) failed the sanitiser's sizes and
    nbformat's writing of the graded notebook: the submission was not graded."""
    import io

    nb = student_notebook(new_code_cell("x = 1  # \ud800", outputs=[new_output("stream", name="stdout", text="\udfff")]),
                          new_markdown_cell("hi \ud800"))
    nb.cells[0].metadata["nbgrader"] = {"grade_id": "a\ud800", "solution": True}
    clean = sanitize_notebook(nb)
    nbformat.write(clean, io.StringIO())
    assert clean.cells[0].source == "x = 1  # ?" and clean.cells[1].source == "hi ?"
    assert clean.cells[0].outputs[0].text == "?" and clean.cells[0].metadata.nbgrader.grade_id == "a?"


# ---- idempotence, and random markdown ------------------------------------------------------------

def everything_notebook():
    cells = [new_markdown_cell(m) for m in MARKDOWN_ATTACKS.values()]
    cells += [new_markdown_cell(ORDINARY), new_raw_cell("<b>raw</b> &lt; x")]
    cells += [new_code_cell("x", outputs=[display("display_data", data)]) for data in OUTPUT_ATTACKS.values()]
    cells.append(new_code_cell("x", outputs=[new_output("stream", name="stdout", text="y" * 300_000)] +
                               [new_output("stream", name="stderr", text="z" * 60_000) for _ in range(5)]))
    return student_notebook(*cells)


def test_sanitising_twice_changes_nothing():
    once = sanitize_notebook(everything_notebook(), max_total_bytes=200_000)
    assert sanitize_notebook(once, max_total_bytes=200_000) == once
    nbformat.validate(once)


PIECES = ["<", ">", "<img src=x onerror=alert(1)>", "<script>", "</script>", "[", "]", "(", ")", "![", "](",
          "]:", "javascript:", "JaVa", "&#106;", "&#x3a;", "&colon;", "&", ";", ":", "$", "$$", "`", "```", "~~~",
          "\\", "\n", "\n\n", "    ", "> ", "- ", "# ", "|", "---", "<b>", "<br>", "<https://a.b>", "data:",
          "text/html", "mermaid", "\\begin{align}", "\\end{align}", "\\\\(", "\\\\)", "<!--", "-->", "<div>",
          "attachment:a", "vbscript:", "\t", "x", "word ", '"', "'", "=", "onerror"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=40).map("".join), min_size=1, max_size=20))
def test_random_markdown_renders_safely_and_sanitising_is_idempotent(sources):
    clean = sanitize_notebook(student_notebook(*with_markers(new_markdown_cell(s) for s in sources)))
    found = problems_per_cell(clean, "formgrade")
    assert not {sources[i]: p for i, p in enumerate(found) if p}
    assert sanitize_notebook(clean) == clean
    nbformat.validate(clean)
