"""MkDocs hook: a bar written ``\\|`` inside code in a table cell shows as ``|``.

GitHub's Markdown splits a table row at every unescaped bar, even inside backticks, so the
pages write a formula's group term in a table as ``(1 \\| g)``; Python-Markdown keeps code
verbatim and would show the backslash. Both renderings then read ``(1 | g)``.
"""

from __future__ import annotations

import re

CELL = re.compile(r"(<td[^>]*>)(.*?)(</td>)", re.DOTALL)
CODE = re.compile(r"(<code[^>]*>)(.*?)(</code>)", re.DOTALL)


def unescape_bars(html: str) -> str:
    """``html`` with ``\\|`` replaced by ``|`` inside the code of its table cells."""

    def code(match: re.Match) -> str:
        return match[1] + match[2].replace("\\|", "|") + match[3]

    return CELL.sub(lambda cell: cell[1] + CODE.sub(code, cell[2]) + cell[3], html)


def on_page_content(html: str, page, config, files) -> str:
    return unescape_bars(html)
