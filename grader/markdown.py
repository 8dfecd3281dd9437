"""Text a submission chose, made inert for a Markdown report."""
from __future__ import annotations

import html
import re


def cell(text) -> str:
    """``text`` as one line of inert Markdown: HTML escaped, Markdown punctuation backslashed."""
    text = html.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`\[\]|])", r"\\\1", text)
