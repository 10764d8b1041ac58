"""Make a graded notebook safe to show: student markdown and outputs, before formgrader and feedback render them.

Formgrader (when the instructor opens a submission) and `nbgrader generate_feedback` render the
graded notebook with nbconvert's HTML exporter and nbgrader's templates. Neither sanitises: raw HTML
in a markdown cell, a `javascript:` link, a text/html or application/javascript output all reach the
instructor's browser, where script runs with the instructor's Jupyter session (it can write files
and open a terminal). `sanitize_notebook` returns a copy that is safe to render that way:

- markdown and raw cells that are not the instructor's (their source is not one of
  `trusted_markdown`) keep their markdown but lose every way to run script: each `<` outside code
  and math becomes `&lt;` (a few harmless tags such as `<br>` and `<b>` stay), a link, image or
  link definition whose address is not http(s), mailto, a #fragment, an attachment or a PNG/JPEG
  data URL loses its link syntax (relative addresses too: formgrader serves the files beside the
  graded notebook from the instructor's origin), attachments keep only PNG and JPEG. The result is rendered with nbconvert's
  own markdown renderer and checked tag by tag and attribute by attribute; a cell that does not
  pass is shown as plain text in a code block instead;
- outputs keep text/plain, image/png and image/jpeg only (a note says what was removed); stream
  and error text stay (the templates escape them); image sizes must be whole numbers (the
  templates write them unquoted into <img>); execution counts must be integers (written unescaped);
- sizes: one output over `max_output_bytes` (counted as its JSON) is cut with a note, images over
  it are replaced by a note; once the outputs pass `max_total_bytes`, later outputs become notes;
  a cell source over `max_source_bytes` is cut with a note; a cell of student markdown over
  `max_markdown_bytes` is cut with a note, and once the notebook's student markdown passes
  `max_notebook_markdown_bytes` or checking it has taken `max_markdown_seconds`, later cells of it
  become notes (rendering markdown to check it is the slow part: about a second per 100 kB, more
  for some text); attachments the markdown lacks are found in one rendering;
- metadata: the notebook keeps kernelspec, language_info and nbgrader; a cell keeps its nbgrader
  metadata (with checked types and a grade_id safe in an HTML attribute) and its tags; an
  output keeps the width, height, alt and unconfined of its images; everything else goes (e.g.
  widget state, which the feedback page would hand to the widget renderer).

Code cell sources are kept as they are: the templates highlight them with Pygments, which escapes.
Sanitising twice gives the same notebook as sanitising once.
"""

from __future__ import annotations

import html
import json
import re
import time
from html.parser import HTMLParser

import nbformat

SAFE_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")
IMAGE_MIME_TYPES = ("image/png", "image/jpeg")
MAX_SOURCE_BYTES = 1_000_000
# Student markdown is rendered to be checked: 1-10 s per MB for most text, and more for some (the
# renderer and the math pattern below take time that grows as the square of a run of `\begin{a}`: 15 s
# for 100 kB). One cell is cut past MAX_MARKDOWN_BYTES; past MAX_NOTEBOOK_MARKDOWN_BYTES in all, or
# once checking the notebook's markdown has taken MARKDOWN_SECONDS, a cell is not shown but noted.
# The instructor's largest markdown cell has 5 kB, the largest notebook 34 kB of markdown in all.
MAX_MARKDOWN_BYTES = 20_000
MAX_NOTEBOOK_MARKDOWN_BYTES = 200_000
MARKDOWN_SECONDS = 5.0
NOT_SHOWN = re.compile(r"\*\[markdown not shown \([\d,]+ bytes\): the student's markdown in this notebook "
                       r"(passed the [\d,]+-byte limit|took more than [\d.]+ s to check)\]\*\n")
MAX_MISSING_ATTACHMENTS = 50  # blank images put in for attachments the markdown uses and the cell lacks
NOTEBOOK_METADATA = ("kernelspec", "language_info", "nbgrader")

# Link schemes a student's markdown may use; data: only for PNG and JPEG images.
SAFE_SCHEMES = {"http", "https", "mailto", "attachment"}
SAFE_DATA_URL = re.compile(r"data:image/(png|jpeg)[;,]")
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
# Characters that would let a grade_id or a tag break out of the HTML attribute it is written into.
UNSAFE_IN_ATTRIBUTE = re.compile(r"[\"'<>&`\x00-\x1f\x7f]")
CELL_ID = re.compile(r"[a-zA-Z0-9\-_]{1,64}")

# Tags with no attributes that stay in student markdown; every other `<` is escaped.
HARMLESS_TAG = re.compile(r"</?(?:b|i|u|s|em|strong|sub|sup|kbd|mark)>|<br\s*/?>", re.IGNORECASE)
SAFE_AUTOLINK = re.compile(r"<(?:https?://|mailto:)[^\s<>\"'`\\&]*>", re.IGNORECASE)

# What nbconvert's markdown renderer (mistune + nbconvert's math and anchor additions) may produce
# from markdown with no raw HTML, and the harmless tags above.
ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "a", "img", "em", "strong", "del", "code",
    "pre", "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "input",
    "dl", "dt", "dd", "div", "span", "b", "i", "u", "s", "sub", "sup", "kbd", "mark",
}
ALLOWED_ATTRIBUTES = {"href", "src", "alt", "title", "id", "class", "style", "start", "type", "disabled", "checked"}
ALLOWED_STYLE = re.compile(r"text-align:\s*(left|right|center);?")

# Placeholder for an image attachment that was removed: a 1x1 transparent PNG.
BLANK_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")

# nbgrader's cell metadata and the types it must have (formgrader and feedback read these).
NBGRADER_KEYS = {
    "grade": bool, "solution": bool, "locked": bool, "task": bool, "points": (int, float),
    "grade_id": str, "schema_version": int, "checksum": str, "cell_type": str,
}
IMAGE_METADATA = {"width": int, "height": int, "unconfined": bool, "alt": str}


def sanitize_notebook(nb: nbformat.NotebookNode, trusted_markdown: set[str] | frozenset = frozenset(), *,
                      max_output_bytes: int = 100_000, max_total_bytes: int = 5_000_000,
                      max_source_bytes: int = MAX_SOURCE_BYTES, max_markdown_bytes: int = MAX_MARKDOWN_BYTES,
                      max_notebook_markdown_bytes: int = MAX_NOTEBOOK_MARKDOWN_BYTES,
                      max_markdown_seconds: float = MARKDOWN_SECONDS) -> nbformat.NotebookNode:
    """A copy of `nb` that formgrader and the feedback page can render without running student script.

    nb: a graded notebook (nbformat v4). trusted_markdown: the sources of the instructor's markdown
    and raw cells (from the release); a cell with exactly that source is kept. max_output_bytes: the
    most one output may take (its JSON, UTF-8); max_total_bytes: the most all outputs may take
    together; max_source_bytes: the most one cell source may take; max_markdown_bytes: the most one
    cell of student markdown may take; max_notebook_markdown_bytes, max_markdown_seconds: the most
    student markdown the notebook's cells may hold together, and the most time checking it may take
    (the cells past either are not shown, a note says so). The input is not changed."""
    nb = _json_copy(nb)
    trusted = set(trusted_markdown)
    nb.metadata = nbformat.from_dict({k: _json_safe(nb.metadata[k]) for k in NOTEBOOK_METADATA
                                      if isinstance(nb.metadata.get(k), dict)})
    _check_language_info(nb.metadata)
    budget = _Budget(max_output_bytes, max_total_bytes, min(max_markdown_bytes, max_source_bytes),
                     max_notebook_markdown_bytes, max_markdown_seconds)
    cells, ids = [], set()
    for index, cell in enumerate(nb.cells):
        cell = _sanitize_cell(cell, trusted, budget, max_source_bytes)
        cell_id = cell.get("id")
        if cell_id is not None or nb.nbformat_minor >= 5:
            if not (isinstance(cell_id, str) and CELL_ID.fullmatch(cell_id)) or cell_id in ids:
                cell_id = _new_id(index, ids)
            cell["id"] = cell_id
            ids.add(cell_id)
        cells.append(cell)
    nb.cells = cells
    return nb


# ---- cells --------------------------------------------------------------------------------------

def _sanitize_cell(cell, trusted: set[str], budget: _Budget, max_source_bytes: int):
    cell_type = cell.get("cell_type")
    source = _text(cell.get("source", ""))
    metadata = _cell_metadata(cell.get("metadata", {}), cell_type)
    keep = {"id": cell["id"]} if "id" in cell else {}
    if cell_type == "code":
        if len(source.encode()) > max_source_bytes:
            note = f"\n# [source cut: {len(source.encode()):,} bytes, over the {max_source_bytes:,}-byte limit]\n"
            source = _cut_bytes(source, max_source_bytes - len(note.encode())) + note
        count = cell.get("execution_count")
        outputs = [budget.fit(o) for o in (_sanitize_output(o) for o in cell.get("outputs", [])) if o]
        return nbformat.from_dict({**keep, "cell_type": "code", "metadata": metadata, "source": source,
                                   "execution_count": _count(count), "outputs": outputs})
    if cell_type == "markdown" and source in trusted:
        attachments = _attachments(cell.get("attachments"), None)
        new = {**keep, "cell_type": "markdown", "metadata": metadata, "source": source}
        if attachments or "attachment:" in source:
            attachments = _fill_missing_attachments(source, attachments)
        if attachments:
            new["attachments"] = attachments
        return nbformat.from_dict(new)
    if cell_type == "raw" and source in trusted:
        return nbformat.from_dict({**keep, "cell_type": "raw", "metadata": metadata, "source": source})
    if cell_type == "markdown":
        if NOT_SHOWN.fullmatch(source):  # sanitised before: the note stays as it is
            return nbformat.from_dict({**keep, "cell_type": "markdown", "metadata": metadata, "source": source})
        size = len(source.encode())
        over = budget.markdown_over()
        if over:
            note = f"*[markdown not shown ({size:,} bytes): the student's markdown in this notebook {over}]*\n"
            return nbformat.from_dict({**keep, "cell_type": "markdown", "metadata": metadata, "source": note})
        started = time.monotonic()
        notes: list[str] = []
        attachments = _attachments(cell.get("attachments"), budget.max_output, notes)
        source += "".join(f"\n\n*[{n}]*" for n in notes)
        attachments = _fill_missing_attachments(_cut_bytes(source, budget.max_markdown), attachments)  # what is shown
        source = sanitize_markdown(source, attachments, max_bytes=budget.max_markdown)
        budget.markdown_seconds += time.monotonic() - started
        budget.markdown += len(source.encode())
        new = {**keep, "cell_type": "markdown", "metadata": metadata, "source": source}
        if attachments:
            new["attachments"] = attachments
        return nbformat.from_dict(new)
    # raw cells, and a cell of an unknown type shown as raw text: no tag can open without `<`
    if len(source.encode()) > max_source_bytes:
        note = f"\n[text cut: {len(source.encode()):,} bytes, over the {max_source_bytes:,}-byte limit]\n"
        source = _cut_bytes(source, max_source_bytes // 4 - len(note)) + note
    source = source.replace("<", "&lt;").replace(">", "&gt;")
    return nbformat.from_dict({**keep, "cell_type": "raw", "metadata": metadata, "source": source})


def _cell_metadata(metadata, cell_type) -> dict:
    """nbgrader's metadata with the right types and a grade_id safe in an attribute, tags, and the
    format of a raw cell (which decides whether the HTML page shows it)."""
    if not isinstance(metadata, dict):
        return {}
    out = {}
    if cell_type == "raw" and isinstance(metadata.get("raw_mimetype"), str):
        out["raw_mimetype"] = metadata["raw_mimetype"][:100]
    grader = metadata.get("nbgrader")
    if isinstance(grader, dict):
        kept = {k: v for k, v in grader.items() if k in NBGRADER_KEYS and isinstance(v, NBGRADER_KEYS[k])
                and not (isinstance(v, bool) and NBGRADER_KEYS[k] is not bool)}
        grade_id = kept.get("grade_id")
        # formgrader writes grade_id unescaped into id="..." and href="#...": a quote would end them
        if grade_id is None or (grade_id and len(grade_id) <= 200 and not UNSAFE_IN_ATTRIBUTE.search(grade_id)):
            if kept.get("cell_type") not in (None, "code", "markdown", "raw"):
                kept.pop("cell_type")
            out["nbgrader"] = kept
    tags = metadata.get("tags")
    if isinstance(tags, list):
        tags = [t for t in tags if isinstance(t, str) and len(t) <= 100 and not UNSAFE_IN_ATTRIBUTE.search(t)]
        if tags:
            out["tags"] = tags
    return out


def _attachments(attachments, max_bytes: int | None, notes: list[str] | None = None) -> dict:
    """PNG and JPEG attachments only, as valid base64; over `max_bytes` a 1x1 placeholder and a note."""
    out = {}
    if not isinstance(attachments, dict):
        return out
    for name, bundle in attachments.items():
        if not isinstance(name, str) or not isinstance(bundle, dict):
            continue
        images = {m: _text(d) for m, d in bundle.items() if m in IMAGE_MIME_TYPES and isinstance(d, (str, list))}
        images = {m: d for m, d in images.items() if BASE64.fullmatch(d)}
        size = sum(len(d) for d in images.values())
        if max_bytes is not None and size > max_bytes:
            label = name if re.fullmatch(r"[\w.\- ]{1,80}", name) else "an image"
            if notes is not None:
                notes.append(f"attachment {label} removed: {size:,} bytes, over the {max_bytes:,}-byte limit")
            images = {"image/png": BLANK_PNG}
        if images:
            out[name] = images
    return out


class _AnyAttachment(dict):
    """Attachments for one rendering that has every name (a blank image), and notes the names asked."""

    def __init__(self, attachments: dict):
        super().__init__(attachments)
        self.asked: list[str] = []

    def __contains__(self, name) -> bool:
        return True

    def __getitem__(self, name):
        self.asked.append(name)
        return dict.get(self, name) or {"image/png": BLANK_PNG}


def _fill_missing_attachments(source: str, attachments: dict) -> dict:
    """Blank images for the attachments the markdown uses and the cell lacks (nbconvert fails on one),
    found in one rendering; none when there are more than MAX_MISSING_ATTACHMENTS (the cell then cannot
    render as markdown and is shown as plain text)."""
    if "attachment:" not in source:
        return dict(attachments)
    every = _AnyAttachment(attachments)
    try:
        _render_markdown(source, every)
    except Exception:  # noqa: BLE001 - markdown the renderer fails on is shown as plain text later
        return dict(attachments)
    missing = dict.fromkeys(name for name in every.asked if name not in attachments)
    if len(missing) > MAX_MISSING_ATTACHMENTS:
        return dict(attachments)
    return {**attachments, **{name: {"image/png": BLANK_PNG} for name in missing}}


# ---- markdown -----------------------------------------------------------------------------------

def sanitize_markdown(source: str, attachments: dict | None = None, *, max_bytes: int = MAX_MARKDOWN_BYTES) -> str:
    """Student markdown that renders with no raw HTML and no unsafe link, as readable as it can be.

    Checked by rendering it the way formgrader and nbconvert do; markdown that does not pass is
    returned as a code block of plain text. The result is itself unchanged by sanitize_markdown."""
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    attachments = attachments or {}
    size = len(source.encode())
    original = source
    if size > max_bytes:
        source = _cut_markdown(original, size, max_bytes, max_bytes)
    safe = _make_safe(source, attachments)
    if len(safe.encode()) > max_bytes:  # escaping made it longer (`<` is `&lt;`): once more, cut by as much
        room = int(len(_cut_bytes(original, max_bytes).encode()) * max_bytes / len(safe.encode()) * 0.95)
        safe = _make_safe(_cut_markdown(original, size, room, max_bytes), attachments)
    if len(safe.encode()) <= max_bytes:
        return safe
    # Plain text is not escaped: cut to fit with its fence around it (longer than any run of ` in it).
    fence = max(3, 1 + max((len(run) for run in re.findall(r"`+", original)), default=0))
    room = max_bytes - len(_as_plain_text("").encode()) - 2 * fence
    text = _as_plain_text(original if size <= room else _cut_markdown(original, size, room, max_bytes))
    return text if not _markdown_problems(text, attachments) else "*[this cell could not be shown safely]*\n"


def _cut_markdown(source: str, size: int, room: int, limit: int) -> str:
    """The start of `source` and a note that it was cut (`size` bytes, over `limit`), in at most `room` bytes."""
    note = f"\n\n*[text cut: {size:,} bytes, over the {limit:,}-byte limit]*\n"
    return _cut_bytes(source, room - len(note)) + note


def _make_safe(source: str, attachments: dict) -> str:
    escaped = _escape_markdown(source)
    if not _markdown_problems(escaped, attachments):
        return escaped
    text = _as_plain_text(source)
    if not _markdown_problems(text, attachments):
        return text
    return "*[this cell could not be shown safely]*\n"


def _as_plain_text(source: str) -> str:
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
    return ("*[shown as plain text: this cell held HTML or links that could not be made safe]*\n\n"
            f"{fence}text\n{source}\n{fence}\n")


FENCE_OPEN = re.compile(r"[ \t>]*(`{3,}|~{3,})(.*)")
# In the order nbconvert's inline parser tries them: math first, then code spans.
_LINE = r"(?:(?!\n[ \t]*\n).)"  # any character, but no blank line: inline spans end with their paragraph
INLINE_PROTECTED = re.compile(
    r"(?s:(?<!\\)\$\$.*?(?<!\\)\$\$)"
    r"|(?s:(?<!\\)\\\\\[.*?(?<!\\)\\\\\])"
    r"|(?s:(?<![$\\])\$" + _LINE + r"+?(?<![$\\])\$)"
    r"|(?s:(?<!\\)\\\\\(" + _LINE + r"*?(?<!\\)\\\\\))"
    r"|(?s:\\begin\{(?P<env>[a-z]*\*?)\}.*?\\end\{(?P=env)\})"
    r"|(?s:(?<![\\`])(?P<ticks>`+)(?!`)" + _LINE + r"+?(?<!`)(?P=ticks)(?!`))"
)


def _escape_markdown(source: str) -> str:
    """Escape `<` and break unsafe link syntax outside code blocks, code spans and math."""
    out, text, lines, i = [], [], source.split("\n"), 0
    while i < len(lines):
        opened = FENCE_OPEN.fullmatch(lines[i])
        if opened and not (opened[1][0] == "`" and "`" in opened[2]):
            out.append(_escape_text("\n".join(text), source) if text else None)
            text = []
            fence, info = opened[1], opened[2]
            if info.strip().startswith("mermaid"):  # nbconvert writes mermaid code unescaped
                lines[i] = lines[i][:opened.start(2)] + "text"
            end = i + 1
            closing = re.compile(r"[ \t>]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*")
            while end < len(lines) and not closing.fullmatch(lines[end]):
                end += 1
            out.append("\n".join(lines[i:end + 1]))
            i = end + 1
        else:
            text.append(lines[i])
            i += 1
    if text:
        out.append(_escape_text("\n".join(text), source))
    return "\n".join(part for part in out if part is not None)


def _escape_text(text: str, source: str) -> str:
    """Escape a stretch of markdown with no fenced code: code spans and math stay as they are."""
    parts, last = [], 0
    for m in INLINE_PROTECTED.finditer(text):
        parts.append(_escape_plain(text[last:m.start()], text, last))
        parts.append(m[0])
        last = m.end()
    parts.append(_escape_plain(text[last:], text, last))
    return "".join(parts)


def _escape_plain(plain: str, whole: str, offset: int) -> str:
    out, i = [], 0
    while i < len(plain):
        char = plain[i]
        if char == "<":
            kept = HARMLESS_TAG.match(plain, i) or SAFE_AUTOLINK.match(plain, i)
            if kept:
                out.append(kept[0])
                i = kept.end()
                continue
            out.append("&lt;")
        elif char == "]" and plain[i + 1:i + 2] in ("(", ":"):
            # the destination may run past this stretch (e.g. into `code`): look at the whole text
            destination = whole[offset + i + 2:offset + i + 400]
            out.append("]\\" if not _safe_destination(destination) else "]")
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _safe_destination(text: str) -> bool:
    """Whether a link destination (and what follows it) starts with an address a student may use.

    Decoded the way a renderer and a browser would: entities, backslash escapes, whitespace and
    control characters inside the scheme, `<...>` brackets."""
    decoded = html.unescape(html.unescape(text)).replace("\\", "")
    decoded = re.sub(r"[\s\x00-\x1f\x7f-\x9f]+", "", decoded).lstrip("<").lower()
    return _safe_url(decoded)


def _safe_url(url: str) -> bool:
    """http(s), mailto, attachment: and PNG/JPEG data URLs, and #fragments. Not relative addresses:
    formgrader serves the files beside a graded notebook from its own origin, unsandboxed."""
    scheme = SCHEME.match(url)
    if scheme is None:
        return url == "" or url.startswith("#")
    if scheme[1] == "data":
        return SAFE_DATA_URL.match(url) is not None
    return scheme[1] in SAFE_SCHEMES


class _MissingAttachment(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _render_markdown(source: str, attachments: dict) -> str:
    """HTML of markdown exactly as nbconvert's HTMLExporter.markdown2html renders it."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, InvalidNotebook, MarkdownWithMath

    renderer = IPythonRenderer(escape=False, attachments=attachments, anchor_link_text="¶")
    try:
        return MarkdownWithMath(renderer=renderer).render(source)
    except InvalidNotebook as error:
        match = re.fullmatch(r"missing attachment: (.*)", str(error), re.DOTALL)
        if match:
            raise _MissingAttachment(match[1]) from None
        raise


def _markdown_problems(source: str, attachments: dict) -> list[str]:
    try:
        rendered = _render_markdown(source, attachments)
    except Exception as error:  # a markdown that breaks the renderer would break formgrader's page
        return [f"cannot render: {type(error).__name__}: {error}"]
    return html_problems(rendered)


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            if name not in ALLOWED_ATTRIBUTES:
                self.problems.append(f"<{tag} {name}>")
            elif name in ("href", "src"):
                url = re.sub(r"[\t\n\r]", "", value).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e"
                                                           "\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a"
                                                           "\x1b\x1c\x1d\x1e\x1f ").lower()
                if not _safe_url(url):
                    self.problems.append(f"<{tag} {name}={value[:40]!r}>")
            elif name == "style" and not ALLOWED_STYLE.fullmatch(value.strip()):
                self.problems.append(f"<{tag} style={value[:40]!r}>")
            elif name == "type" and value != "checkbox":
                self.problems.append(f"<{tag} type={value[:40]!r}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data):
        self.problems.append("<!-- comment -->")

    def handle_decl(self, decl):
        self.problems.append(f"<!{decl[:40]}>")

    def handle_pi(self, data):
        self.problems.append(f"<?{data[:40]}>")

    def unknown_decl(self, data):
        self.problems.append(f"<![{data[:40]}>")


def html_problems(rendered: str) -> list[str]:
    """What in rendered student markdown is not on the allow-list (tags, attributes, URLs); [] if safe."""
    checker = _Checker()
    checker.feed(rendered)
    checker.close()
    return checker.problems


# ---- outputs ------------------------------------------------------------------------------------

def _sanitize_output(output) -> dict | None:
    """An output with only safe mime types and metadata, or None for an output that cannot show."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return {"output_type": "stream", "name": name, "text": _text(output.get("text", ""))}
    if kind == "error":
        traceback = output.get("traceback")
        return {"output_type": "error", "ename": _text(output.get("ename", "")),
                "evalue": _text(output.get("evalue", "")),
                "traceback": [_text(line) for line in traceback] if isinstance(traceback, list) else []}
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    kept = {m: _text(data[m]) for m in SAFE_MIME_TYPES if isinstance(data.get(m), (str, list))}
    kept = {m: d for m, d in kept.items() if m == "text/plain" or BASE64.fullmatch(d)}
    removed = sorted(m for m in data if m not in kept)
    if not kept:
        kept["text/plain"] = f"[output of type {', '.join(removed) or 'unknown'} removed for safety]"
    metadata = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    new_metadata = {}
    for mime in IMAGE_MIME_TYPES:
        if mime in kept and isinstance(metadata.get(mime), dict):
            image = {k: v for k, v in metadata[mime].items() if k in IMAGE_METADATA and isinstance(v, IMAGE_METADATA[k])
                     and not (isinstance(v, bool) and IMAGE_METADATA[k] is not bool)}
            if image:
                new_metadata[mime] = image
    new = {"output_type": kind, "data": kept, "metadata": new_metadata}
    if kind == "execute_result":
        new["execution_count"] = _count(output.get("execution_count"))
    return new


class _Budget:
    """Cuts outputs over the per-output limit and replaces outputs past the notebook's limit."""

    def __init__(self, max_output: int, max_total: int, max_markdown: int = MAX_MARKDOWN_BYTES,
                 max_markdown_total: int = MAX_NOTEBOOK_MARKDOWN_BYTES, max_markdown_seconds: float = MARKDOWN_SECONDS):
        self.max_output, self.max_total, self.total, self.full = max_output, max_total, 0, False
        self.max_markdown, self.max_markdown_total, self.markdown = max_markdown, max_markdown_total, 0
        self.max_markdown_seconds, self.markdown_seconds = max_markdown_seconds, 0.0

    def markdown_over(self) -> str:
        """Why the next cell of student markdown is past the notebook's budget, or "" when it is within
        (the markdown shown so far, counted as sanitised, so that sanitising again keeps the same cells)."""
        if self.markdown_seconds >= self.max_markdown_seconds:
            return f"took more than {self.max_markdown_seconds:g} s to check"
        if self.markdown >= self.max_markdown_total:
            return f"passed the {self.max_markdown_total:,}-byte limit"
        return ""

    def fit(self, output: dict):
        size = _json_size(output)
        if size > self.max_output:
            output = _cut_output(output, size, self.max_output)
            size = _json_size(output)
        if self.full or self.total + size > self.max_total:
            self.full = True
            output = _note_output(output, f"[output removed: the outputs of this notebook passed the "
                                          f"{self.max_total:,}-byte limit]")
            size = _json_size(output)
        self.total += size
        return nbformat.from_dict(output)


def _cut_output(output: dict, size: int, limit: int) -> dict:
    note = f"[output cut: {size:,} bytes, over the {limit:,}-byte limit]"
    kind = output["output_type"]
    if kind == "stream":
        room = limit - _json_size({**output, "text": ""}) - len(note) - 16
        return {**output, "text": _cut_json(output["text"], room) + "\n" + note + "\n"}
    if kind == "error":
        evalue = _cut_json(output["evalue"], limit // 4)
        room = limit - _json_size({**output, "evalue": evalue, "traceback": []}) - len(note) - 16
        tail: list[str] = []
        for line in reversed(output["traceback"]):  # the last lines say what went wrong
            line = _cut_json(line, room - 8)
            room -= _json_size(line) + 2
            if room < 0:
                break
            tail.insert(0, line)
        return {**output, "evalue": evalue, "traceback": [note, *tail]}
    # display_data, execute_result: images become notes, the text is cut
    notes = [f"[{mime} output removed: {_json_size(output['data'][mime]):,} bytes, over the {limit:,}-byte limit]"
             for mime in IMAGE_MIME_TYPES if mime in output["data"]]
    text = output["data"].get("text/plain", "")
    new = {**output, "data": {}, "metadata": {}}
    body = "\n".join(t for t in (text, *notes) if t)
    if _json_size({**new, "data": {"text/plain": body}}) > limit:
        room = limit - _json_size(new) - len(note) - sum(len(n) + 2 for n in notes) - 48
        body = "\n".join([_cut_json(text, room), note, *notes])
    new["data"] = {"text/plain": body}
    return new


def _note_output(output: dict, note: str) -> dict:
    """An output of the same kind that holds only `note`."""
    kind = output["output_type"]
    if kind == "stream":
        return {"output_type": "stream", "name": output["name"], "text": note + "\n"}
    if kind == "error":
        return {"output_type": "error", "ename": _cut_json(output["ename"], 200), "evalue": "", "traceback": [note]}
    new = {"output_type": kind, "data": {"text/plain": note}, "metadata": {}}
    if kind == "execute_result":
        new["execution_count"] = output.get("execution_count")
    return new


# ---- helpers ------------------------------------------------------------------------------------

def _json_size(obj) -> int:
    return len(json.dumps(obj, ensure_ascii=False).encode())


def _cut_json(text: str, room: int) -> str:
    """The longest start of `text` whose JSON takes at most `room` bytes (cut at a line end if near)."""
    room = max(room, 0)
    if _json_size(text) <= room:
        return text
    cut = text[:room]
    while cut and _json_size(cut) > room:
        cut = cut[:int(len(cut) * room / _json_size(cut) * 0.95)]
    newline = cut.rfind("\n")
    return cut[:newline] if newline > 0.9 * len(cut) else cut


def _cut_bytes(text: str, room: int) -> str:
    return text.encode()[:max(room, 0)].decode(errors="ignore")


def _text(value) -> str:
    """A string field of a notebook, also when stored as a list of lines or of a wrong type."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


def _count(value) -> int | None:
    """An execution count: the templates write it unescaped, so only an int (or None) stays."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _new_id(index: int, taken: set[str]) -> str:
    n = 0
    while (candidate := f"cell-{index}" + (f"-{n}" if n else "")) in taken:
        n += 1
    return candidate


def _json_copy(nb) -> nbformat.NotebookNode:
    """A deep copy made only of JSON types and of text that UTF-8 can encode: a lone surrogate
    (``"\\ud800"`` in the file's JSON) becomes ``?``, for it would fail the steps that encode text
    (sizes here, nbformat writing the graded notebook)."""
    text = json.dumps(nb, ensure_ascii=False, default=lambda _: None)
    return nbformat.from_dict(json.loads(text.encode("utf-8", "replace").decode("utf-8")))


def _json_safe(value):
    """A deep copy made only of JSON types (drops anything else)."""
    return json.loads(json.dumps(value, default=lambda _: None))


def _check_language_info(metadata) -> None:
    """kernelspec and language_info as nbformat's schema wants them (nbconvert refuses to render a
    notebook that does not pass it), and a Pygments lexer that exists (it picks how code is shown)."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    for key, required in (("kernelspec", ("name", "display_name")), ("language_info", ("name",))):
        fields = metadata.get(key)
        if isinstance(fields, dict):
            for name in list(fields):
                if not isinstance(fields[name], str) and name != "codemirror_mode":
                    fields.pop(name)
            if not all(name in fields for name in required):
                metadata.pop(key)
    lexer = metadata.get("language_info", {}).get("pygments_lexer")
    if lexer is not None:
        try:
            get_lexer_by_name(lexer)
        except ClassNotFound:
            metadata["language_info"].pop("pygments_lexer")
