"""Sphinx extension for the API reference: two Google-docstring habits Napoleon misreads.

Runs on each docstring before Napoleon (priority 400 < Napoleon's 500):

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


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
