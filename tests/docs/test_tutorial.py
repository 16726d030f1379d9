"""docs/backprop-by-hand.md runs top to bottom, and says what it prints.

Every ```python block is executed in order, in one namespace, in a temporary working directory
(the tutorial writes its figure there). A ```python block followed directly by a ```text block
must print exactly that text: the tutorial's shown output is checked, so it cannot go stale.
(Output shown for illustration only, whose last digits depend on the machine, is fenced as
```console and not compared.)
"""
import contextlib
import io
import re
from pathlib import Path


TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "backprop-by-hand.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(text):
    """[(language, body)] of the fenced blocks, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def test_fences_are_read():
    sample = "a\n```python\nx = 1\n```\n\n```text\n1\n```\nb\n"
    assert blocks(sample) == [("python", "x = 1\n"), ("text", "1\n")]


def test_tutorial_runs_and_prints_what_it_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = blocks(TUTORIAL.read_text(encoding="utf-8"))
    code = [n for n, (lang, _) in enumerate(found) if lang == "python"]
    assert len(code) >= 10
    namespace = {"__name__": "__tutorial__"}
    checked = 0
    for n in code:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(found[n][1], f"{TUTORIAL.name}, block {n}", "exec"), namespace)
        if n + 1 < len(found) and found[n + 1][0] == "text":
            assert out.getvalue() == found[n + 1][1], f"block {n} printed:\n{out.getvalue()}"
            checked += 1
    assert checked >= 5
    figure = tmp_path / "trace.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
