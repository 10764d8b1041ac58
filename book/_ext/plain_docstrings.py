"""Let autodoc read imgrec_lib's plain-text docstrings without reStructuredText errors.

The library's docstrings are written for people reading the code (micrograd and d2l style), not as
reStructuredText. Two plain-text habits are errors under `sphinx -W`; this hook fixes them as the
docstrings are read, so the reference shows them as written:

- `|x|` (an absolute value) reads as a substitution reference: every `|` is escaped.
- an indented example after a paragraph that does not end in `::` reads as an unexpected
  indentation: such a block becomes a literal (code) block.
"""

from __future__ import annotations

import re


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _text_indent(line: str) -> int:
    """Where the text of a line starts: after the marker for a list item ("- ", "* ", "1. ")."""
    stripped = line.lstrip()
    marker = re.match(r"([-*+]|\d+[.)]) ", stripped)
    return _indent(line) + (len(marker.group(0)) if marker else 0)


def plain_to_rst(lines: list[str]) -> list[str]:
    """The docstring lines with pipes escaped and indented example blocks made literal."""
    out: list[str] = []
    for i, line in enumerate(lines):
        previous = next((l for l in reversed(lines[:i]) if l.strip()), "")
        starts_block = (
            line.strip()
            and i > 0
            and not lines[i - 1].strip()
            and _indent(line) > _text_indent(previous)
            and not previous.rstrip().endswith("::")
            and not previous.lstrip().startswith((">>>", "..."))
        )
        if starts_block:
            out[-1:] = ["", "::", ""]
        out.append(line.replace("|", r"\|"))
    return out


def _process(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = plain_to_rst(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
