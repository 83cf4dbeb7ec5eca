"""The README and the manual under docs/ stay readable and whole: the README is short, every
relative link and image in them points to a file that exists, and the README still holds
the two commands CI runs (.ci/run reads its install and test commands). Plain text checks,
no heavy imports."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))

# [text](target) and ![alt](target), the target up to the first space or ')' (a title may follow)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*)?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def relative_links(text):
    """The relative link targets of a markdown text, without #fragments; code blocks and
    inline code are not markdown links."""
    text = FENCE.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s)://, mailto:, ... and anchors within the page
        out.append(target.split("#", 1)[0])
    return out


def broken_links(path):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    base = os.path.dirname(path)
    return [t for t in relative_links(text) if not os.path.exists(os.path.normpath(os.path.join(base, t)))]


def test_readme_is_short():
    with open(README, encoding="utf-8") as fh:
        n = len(fh.read().splitlines())
    assert n <= 250, f"README.md has {n} lines; at most 250: move the detail to docs/"


def test_readme_keeps_the_commands_ci_runs():
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    assert "pip install -e . && fastasync train" in text
    assert 'pip install -e ".[test]" && pytest' in text


@pytest.mark.parametrize("path", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_every_relative_link_points_to_a_file(path):
    assert broken_links(path) == [], f"{os.path.relpath(path, ROOT)} links files that do not exist"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok too](there.md#part) ![missing image](gone.png) [web](https://example.com/x.md) "
        "[anchor](#here) [missing](docs/nowhere.md#a \"title\")\n"
        "`[code](not-a-link.md)`\n```\n[fenced](neither.md)\n```\n"
    )
    assert broken_links(str(page)) == ["gone.png", "docs/nowhere.md"]
