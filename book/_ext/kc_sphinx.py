"""Local Sphinx extension of the book (loaded through ``_config.yml``'s ``local_extensions``).

1. Each script the page loads is included once. sphinx-thebe adds its configuration script on
   every ``env-before-read-docs``; when that event fires twice, the page declares
   ``THEBE_JS_URL`` twice and the browser logs a SyntaxError (tests/test_browser.py).

2. For the API reference, three docstring habits Napoleon / reST misread are fixed on each
   docstring before Napoleon sees it (priority 400 < Napoleon's 500):

* an ``Args:`` entry whose list of names goes on to the next line (``a, b,`` / ``c: text``)
  is joined into one line;
* ``*args`` / ``**kwargs`` inside a list of names (``a, b, **kw: text``) are escaped; Napoleon
  escapes them only when they stand alone;
* ``|.|`` or ``|x|`` (an absolute value written in plain text) is escaped outside ````code````:
  reST would read it as a substitution that no docstring defines.
"""

from __future__ import annotations

import re
from typing import Any

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Other Parameters):\s*$")
_STARRED = re.compile(r"(?<![\\\w])(\*\*?)(?=\w)")
_BARS = re.compile(r"(?<!\\)\|(?=\S)([^|`]*?\S)\|")
_LITERAL = re.compile(r"(``.*?``)")


def _escape_bars(line: str) -> str:
    parts = _LITERAL.split(line)
    return "".join(p if p.startswith("``") else _BARS.sub(r"\\|\1\\|", p) for p in parts)


def _fix(lines: list[str]) -> None:
    out: list[str] = []
    entry_indent: int | None = None
    section_indent = -1
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.match(line)
        if header:
            section_indent, entry_indent = len(header.group(1)), None
            out.append(line)
            continue
        if stripped and indent <= section_indent:
            section_indent, entry_indent = -1, None
        if section_indent >= 0 and stripped:
            if entry_indent is None:
                entry_indent = indent
            if indent == entry_indent:
                names, colon, rest = line.partition(":")
                if "," in names and colon:
                    line = _STARRED.sub(lambda m: "\\*" * len(m.group(1)), names) + colon + rest
                if out and out[-1].rstrip().endswith(",") and ":" not in out[-1]:
                    line = out.pop().rstrip() + " " + line.lstrip()
        out.append(line)
    lines[:] = [_escape_bars(line) for line in out]


def _process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    _fix(lines)


def _unique_scripts(
    app: Any, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        # an inline script is added with filename None or "" depending on the extension
        attributes = getattr(script, "attributes", {})
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # in place: the builder's list is the one later handlers extend


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process, priority=400)
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
