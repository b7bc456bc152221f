"""Every path the documentation names exists, and the README stays a newcomer's page.

Checked documents: ``README.md``, ``SECURITY.md``, ``bench/README.md`` and every ``docs/*.md``.

What counts as a path (fenced code blocks are skipped: they hold commands and YAML examples):

- the target of a relative Markdown link ``[text](target)``, its ``#anchor`` stripped, resolved
  against the document's own folder;
- a word of an inline code span (split on whitespace; quotes, brackets and a trailing ``:,;.``
  dropped) that contains a ``/`` or ends in ``.py``, ``.md``, ``.yaml``, ``.html``, ``.txt``,
  ``.toml``, ``.ini`` or ``.cfg``, resolved against the repository root.

Not paths, by these rules and nothing else:

- URLs: anything with ``://`` or starting with ``mailto:``, and pure ``#anchor`` links;
- anything starting with ``/``: a URL path of the running site (``/api/v1/…``, ``/admin/``) or
  a path of the machine (``/usr/bin/chromium``), never a repository path;
- placeholders, variables and options: a word containing ``*``, ``<``, ``>``, ``{``, ``}``,
  ``…``, ``$`` or ``=`` (``trials/protocols/*.yaml``, ``…/participants/``, ``--ignore=.venv``);
- what running the project makes and git ignores: the ``GENERATED`` folders below.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = (".venv/", "bench/results/", "test-artifacts/", "staticfiles/", "media/")
EXTENSIONS = (".py", ".md", ".yaml", ".html", ".txt", ".toml", ".ini", ".cfg")
PLACEHOLDER = re.compile(r"[*<>{}…$=]")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")


def documents() -> list[Path]:
    docs = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "bench" / "README.md"]
    return docs + sorted((ROOT / "docs").glob("*.md"))


def _excluded(target: str) -> bool:
    return ("://" in target or target.startswith(("/", "mailto:"))
            or bool(PLACEHOLDER.search(target)) or target.startswith(GENERATED))


def named_paths(text: str) -> list[tuple[str, str]]:
    """(kind, path) for every path ``text`` names: kind is "link" or "code"."""
    text = FENCE.sub("", text)
    found: list[tuple[str, str]] = []
    for span in CODE_SPAN.finditer(text):
        for word in span.group(2).split():
            word = word.strip("\"'(").rstrip(":,;.)\"'")
            if ("/" in word or word.endswith(EXTENSIONS)) and not _excluded(word):
                found.append(("code", word))
    for link in LINK.finditer(CODE_SPAN.sub("", text)):
        target = link.group(1).split("#", 1)[0]
        if target and not _excluded(target):
            found.append(("link", target))
    return found


def missing_paths(doc: Path, text: str) -> list[str]:
    missing = []
    for kind, path in named_paths(text):
        base = doc.parent if kind == "link" else ROOT
        if not (base / path).exists():
            missing.append(f"{doc.relative_to(ROOT)}: {kind} {path!r}")
    return missing


@pytest.mark.parametrize("doc", documents(), ids=lambda d: str(d.relative_to(ROOT)))
def test_every_path_a_document_names_exists(doc):
    assert doc.exists(), f"{doc.relative_to(ROOT)} is missing"
    missing = missing_paths(doc, doc.read_text(encoding="utf-8"))
    assert not missing, "paths named but not in the repository:\n" + "\n".join(missing)


def test_the_docs_folder_has_chapters():
    assert list((ROOT / "docs").glob("*.md"))


def test_the_readme_links_every_chapter():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = {target for kind, target in named_paths(readme) if kind == "link"}
    expected = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    expected |= {"bench/README.md", "SECURITY.md"}
    assert expected - links == set()


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 260, f"README.md has {lines} lines; move detail to docs/"


def test_the_check_finds_a_made_up_path():
    text = (
        "See `trials/no_such_module.py` and [the chapter](no-such-chapter.md#top).\n"
        "Real: `trials/protocols/reminet.yaml`, [security](SECURITY.md).\n"
        "Not paths: `/api/v1/trials/`, `/usr/bin/chromium`, `https://example.org/x.md`, "
        "`trials/protocols/*.yaml`, `USR.<number>`, [site](https://example.org), [top](#top).\n"
        "```sh\nmanage.py load_protocol path/to/trial.yaml\n```\n"
    )
    assert missing_paths(ROOT / "README.md", text) == [
        "README.md: code 'trials/no_such_module.py'",
        "README.md: link 'no-such-chapter.md'",
    ]
