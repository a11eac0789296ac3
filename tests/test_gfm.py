"""The Markdown renderer: cmarkgfm's output, byte for byte, without its memory leak."""

from __future__ import annotations

from pathlib import Path

import cmarkgfm
import pytest

from feedsvc.gfm import EXTENSIONS, OPTIONS, markdown_to_html

BODIES = [
    "",
    "Plain *text* with \"smart\" quotes -- and dashes...",
    "| a | b |\n|---|:-:|\n| 1 | 2 |\n",
    "Visit https://example.org/path?q=1 or www.example.com.",
    "~~gone~~ and - [x] done\n- [ ] todo\n",
    "<figure><img src=\"a.jpg\"><figcaption>Raw HTML</figcaption></figure>\n\n<script>x</script>",
    "```python\nprint('code')\n```\n\n> quote\n\n1. one\n2. two\n",
    "Entities &amp; &copy; &#233; \u00e9\u00f1 \U0001f600 [link](/relative \"title\")",
    "# Heading\n\n" + "Deep " * 500 + "\n\n" + "> " * 50 + "nested",
]


@pytest.mark.parametrize("text", BODIES)
def test_the_same_html_as_cmarkgfm(text: str) -> None:
    expected = cmarkgfm.markdown_to_html_with_extensions(text, options=OPTIONS, extensions=list(EXTENSIONS))
    assert markdown_to_html(text) == expected


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
def test_rendering_does_not_grow_memory() -> None:
    body = "\n\n".join(f"Paragraph {n} with *emphasis*, a [link](https://example.org/{n}) and text. " * 8
                       for n in range(12))  # about 10 KB: cmarkgfm's own call leaked about 80 KB of it each time
    for _ in range(200):  # let the allocator settle
        markdown_to_html(body)
    before = _resident_bytes()
    for _ in range(2000):
        markdown_to_html(body)
    assert _resident_bytes() - before < 16 * 1024 * 1024  # the leaking call grows by ~160 MB here
