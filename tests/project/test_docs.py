"""The README and docs/ link to one another and into the code. GitHub renders a dead link or a stale `#anchor`
without complaint, so a moved page, a renamed heading or a moved module would go unnoticed; these tests read the
Markdown (no TensorFlow) and fail on any of them, and keep the README short with every page reachable from it."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from helpers import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS_INDEX = REPO_ROOT / "docs" / "README.md"
DOCS_PAGES = sorted((REPO_ROOT / "docs").glob("*.md"))
MAX_README_LINES = 200

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")  # ATX headings; the docs use no setext ones
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
EXTERNAL = re.compile(r"^(?:https?|mailto):", re.IGNORECASE)


def lines_outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """Each line outside fenced code blocks with its 1-based number: a fence holds examples, not links or headings."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None:
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence = match.group(1)
                continue
            yield number, line
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not match.group(2).strip():
            fence = None


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text lower-cased, punctuation other than hyphens and
    underscores dropped, each space a hyphen (duplicates are numbered by `heading_anchors`)."""
    text = CODE_SPAN.sub(lambda match: match.group(2), heading)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", text)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text)  # and HTML tags as nothing
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@functools.cache
def heading_anchors(page: Path) -> frozenset[str]:
    """Every anchor a page's headings get; the second heading with one slug gets `-1`, the third `-2`."""
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in lines_outside_fences(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return frozenset(anchors)


def link_targets(page: Path) -> Iterator[tuple[int, str]]:
    """The target of every inline link, image and reference definition outside code, with its line number."""
    for number, line in lines_outside_fences(page.read_text(encoding="utf-8")):
        prose = CODE_SPAN.sub(lambda match: " " * len(match.group(0)), line)  # `[a](b)` in code is not a link
        targets = [match.group(1) for match in INLINE_LINK.finditer(prose)]
        definition = REFERENCE_DEFINITION.match(prose)
        targets += [definition.group(1)] if definition else []
        for target in targets:
            yield number, target.strip("<>")


def shown(page: Path) -> str:
    """The page as a reader finds it: relative to the checkout when it is in it."""
    return str(page.relative_to(REPO_ROOT)) if page.is_relative_to(REPO_ROOT) else page.name


def broken_links(page: Path) -> list[str]:
    """Every relative link of `page` whose file, folder or heading does not exist, as `page:line: target (why)`."""
    problems = []
    for number, target in link_targets(page):
        if EXTERNAL.match(target):
            continue
        where = f"{shown(page)}:{number}: {target}"
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        if path_part.startswith("/"):
            problems.append(f"{where} (an absolute path: link relative to the page)")
            continue
        resolved = page.parent / path_part if path_part else page
        if not resolved.exists():
            problems.append(f"{where} (no such file or folder)")
        elif anchor and resolved.is_file() and resolved.suffix == ".md" and unquote(anchor) not in heading_anchors(resolved):
            problems.append(f"{where} (no heading of {resolved.name} has that anchor)")
    return problems


def linked_files(page: Path) -> set[Path]:
    """The local files and folders a page links to, resolved."""
    return {(page.parent / unquote(target.partition("#")[0])).resolve()
            for _, target in link_targets(page) if target.partition("#")[0] and not EXTERNAL.match(target)}


def test_every_relative_link_and_anchor_in_the_readme_and_docs_resolves() -> None:
    problems = [problem for page in [README, *DOCS_PAGES] for problem in broken_links(page)]
    assert problems == []


def test_the_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    """Without this, a parser that found no links at all would let the test above pass on anything."""
    (tmp_path / "other.md").write_text("# Other page\n\n## Usage: the `run` command\n\n## Usage: the `run` command\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n"
                    "[a](other.md#usage-the-run-command) [b](other.md#usage-the-run-command-1) [c](#page) [d](.) [e](https://example.com/x)\n"
                    "[gone](missing.md) and [stale](other.md#usage) and ![picture](images/none.png) and [here](#nowhere)\n"
                    "```\n[in a fence](fenced.md)\n```\n"
                    "`[in code](spanned.md)`\n", encoding="utf-8")
    assert broken_links(page) == [
        "page.md:4: missing.md (no such file or folder)",
        "page.md:4: other.md#usage (no heading of other.md has that anchor)",
        "page.md:4: images/none.png (no such file or folder)",
        "page.md:4: #nowhere (no heading of page.md has that anchor)",
    ]


def test_slugs_follow_githubs_rules() -> None:
    assert github_slug("Precision: bfloat16 and float16") == "precision-bfloat16-and-float16"
    assert github_slug("What was tried, and what it gave") == "what-was-tried-and-what-it-gave"
    assert github_slug("The sweep's pick") == "the-sweeps-pick"
    assert github_slug("Options of `run` and `extract`") == "options-of-run-and-extract"
    assert github_slug("see [usage](usage.md) and beam_storage") == "see-usage-and-beam_storage"


def test_the_readme_stays_short_and_names_the_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES, "move detail into a page of docs/ and link it"
    assert "    make test\n" in text  # CI runs `make test`; the README must keep telling users the same command


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index() -> None:
    from_readme = linked_files(README)
    assert DOCS_INDEX.resolve() in from_readme
    reachable = from_readme | linked_files(DOCS_INDEX)
    unlinked = [shown(page) for page in DOCS_PAGES if page != DOCS_INDEX and page.resolve() not in reachable]
    assert unlinked == []
