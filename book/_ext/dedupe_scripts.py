"""Include each inline script once per page.

sphinx-thebe 0.3.1 (which Jupyter Book always loads) adds its inline configuration script
(`const THEBE_JS_URL = ...`) again each time Sphinx reads sources, so pages can carry it twice,
and the browser then stops with "Identifier 'THEBE_JS_URL' has already been declared".
sphinx-togglebutton repeats its inline script the same way (harmless, but dropped too). This hook
keeps the first of scripts that differ only in priority or in a filename of None or '' (tests/test_browser.py checks the console).
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    seen, scripts = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    # In place: this is the builder's own list, and handlers that run later (MathJax's) add to it.
    context["script_files"][:] = scripts


def setup(app):
    app.connect("html-page-context", _dedupe, priority=100)  # early: a later handler may stop the event
    return {"parallel_read_safe": True, "parallel_write_safe": True}
