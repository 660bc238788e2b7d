"""The docs stand alone: every file they point a reader to is in this repository.

Contract guarded (issue 13): README.md, docs/*.md, benchmarks/README.md, the rule catalogue and
its docs (rules/*.toml) and the output of ``tpcheck explain --all`` cite only files that exist
here, so a user with a checkout (or the installed package's docs) can follow every reference:

* a Markdown link resolves from the folder of the file that holds it, to a file inside the
  repository, and a ``#fragment`` names a heading of the linked page;
* a path that starts at one of the repository's top-level folders (``docs/theory.md``,
  ``tpcheck/sizes.py``, ``tpcheck/rules/`` through the package-dir mapping of pyproject.toml)
  resolves from the repository root; a bare ``name.md`` from the file's folder or the root;
* a citation ``X.md §N`` resolves from the repository root (so ``theory.md §4`` without
  ``docs/`` fails), and every ``docs/theory.md §N`` / ``§N.M`` / ``§6 pitfall K`` it cites is a
  heading (or an item of the pitfall list) of docs/theory.md;
* nothing mentions the project-internal spec (``../shared``, ``shared/spec``, ``design.md``).

Real files and the real CLI: nothing is mocked.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
THEORY = REPO / "docs" / "theory.md"
FORBIDDEN = ("../shared", "shared/spec", "design.md")
EXPLAIN = "tpcheck explain --all"

#: ``[text](target)`` and ``![alt](target)``, with an optional title.
LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: A path with at least one folder: ``docs/theory.md``, ``../docs/coord.md``, ``tpcheck/rules/``.
PATH = re.compile(r"(?<![\w./:-])((?:\.\.?/)*(?:[\w.-]+/)+"
                  r"(?:[\w-][\w.-]*\.(?:md|toml|py|png|json))?)(?![\w/])")
#: A Markdown file named without a folder: ``rules.md``, ``theory.md``.
BARE_MD = re.compile(r"(?<![\w./:-])([\w-][\w.-]*\.md)(?![\w/])")
#: A section citation right after a file name.
CITED_AFTER = re.compile(r"\s+§")
#: ``docs/theory.md §3 (gloss) and §6 pitfalls 3 and 4``: the whole chain of one citation.
_ITEM = r"§\d+(?:\.\d+)?(?:\s+pitfalls?\s+\d+(?:\s*(?:,|and)\s*\d+)*)?"
_GAP = r"(?:\s*\([^()]*\))?(?:\]\([^)]*\))?"
CITATION = re.compile(rf"docs/theory\.md\s+({_ITEM}(?:{_GAP}\s*(?:,|and)\s+{_ITEM})*)")
ITEM = re.compile(r"§(\d+(?:\.\d+)?)(?:\s+pitfalls?\s+(\d+(?:\s*(?:,|and)\s*\d+)*))?")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)


def _documents() -> list[Path]:
    files = [REPO / "README.md", REPO / "benchmarks" / "README.md"]
    files += sorted((REPO / "docs").glob("*.md")) + sorted((REPO / "rules").glob("*.toml"))
    return [f for f in files if f.is_file()]


DOCUMENTS = _documents()


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


@cache
def _explain_output() -> str:
    """What a user reads from ``tpcheck explain --all``, from the real CLI."""
    done = subprocess.run([sys.executable, "-m", "tpcheck", "explain", "--all"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _text(source: str) -> tuple[str, Path]:
    """The text to check and the folder its relative links resolve from."""
    if source == EXPLAIN:
        return _explain_output(), REPO
    path = REPO / source
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        text = FENCE.sub("", text)  # code blocks hold examples, not references
    return text, path.parent


@cache
def _package_dirs() -> tuple[tuple[str, str], ...]:
    """``tpcheck/rules`` -> ``rules``: where an installed package's files live in the repo."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    pairs = [(pkg.replace(".", "/"), folder) for pkg, folder in mapping.items()]
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def _exists_from_root(reference: str) -> bool:
    reference = reference.rstrip("/")
    if _inside(REPO / reference):
        return True
    for package, folder in _package_dirs():
        if reference == package or reference.startswith(package + "/"):
            return _inside(REPO / folder / reference[len(package):].lstrip("/"))
    return False


def _inside(path: Path) -> bool:
    resolved = path.resolve()
    return resolved.exists() and (resolved == REPO or REPO in resolved.parents)


@cache
def _top_level() -> frozenset[str]:
    return frozenset(p.name for p in REPO.iterdir() if not p.name.startswith("."))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def _anchors(path: Path) -> frozenset[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(out)


@cache
def _theory() -> tuple[frozenset[str], int]:
    """The section numbers docs/theory.md has as headings (``1``…, ``8.2``…) and how many
    pitfalls its §6 lists."""
    text = FENCE.sub("", THEORY.read_text(encoding="utf-8"))
    sections = set(re.findall(r"^##\s+§?(\d+)\.?\s", text, re.M))
    sections |= set(re.findall(r"^###\s+§?(\d+\.\d+)\.?\s", text, re.M))
    six = re.search(r"^##\s+§?6\.?\s.*?(?=^##\s)", text, re.M | re.S)
    pitfalls = len(re.findall(r"^\d+\.\s", six.group(0), re.M)) if six else 0
    return frozenset(sections), pitfalls


def _broken_links(text: str, folder: Path, here: Path | None) -> list[str]:
    broken = []
    for _, target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto:
        path_part, _, fragment = target.partition("#")
        linked = (folder / path_part) if path_part else here
        if linked is None or not _inside(linked):
            broken.append(f"{target}: no such file in the repository")
            continue
        if fragment and linked.suffix == ".md" and fragment not in _anchors(linked.resolve()):
            broken.append(f"{target}: {_name(linked.resolve())} has no heading #{fragment}")
    return broken


def _broken_mentions(text: str, folder: Path) -> list[str]:
    text = LINK.sub(lambda m: f"[{m.group(1)}]", text)  # link targets are checked as links
    broken = []
    for match in PATH.finditer(text):
        reference = match.group(1)
        cited = bool(CITED_AFTER.match(text, match.end()))
        if reference.startswith(("./", "../")):
            if cited or not _inside(folder / reference):
                broken.append(f"{reference}: cite it from the repository root" if cited
                              else f"{reference}: no such file")
        elif reference.split("/")[0] in _top_level() and not _exists_from_root(reference):
            broken.append(f"{reference}: no such file in the repository")
    for match in BARE_MD.finditer(text):
        name = match.group(1)
        if CITED_AFTER.match(text, match.end()):
            if not _exists_from_root(name):
                broken.append(f"{name} §…: cite it from the repository root (docs/{name}?)")
        elif not (_inside(folder / name) or _exists_from_root(name)):
            broken.append(f"{name}: no such file next to it or at the repository root")
    return broken


def _bad_citations(text: str) -> list[str]:
    sections, pitfalls = _theory()
    bad = []
    for chain in CITATION.finditer(text):
        for number, items in ITEM.findall(chain.group(1)):
            if number not in sections:
                bad.append(f"docs/theory.md §{number}: no such section heading")
            for k in re.findall(r"\d+", items):
                if number == "6" and not 1 <= int(k) <= pitfalls:
                    bad.append(f"docs/theory.md §6 pitfall {k}: §6 lists {pitfalls}")
    return bad


SOURCES = [_name(p) for p in DOCUMENTS] + [EXPLAIN]


def test_theory_is_the_numbered_reference_the_rules_cite() -> None:
    sections, pitfalls = _theory()
    assert {str(k) for k in range(1, 9)} <= sections, sorted(sections)
    assert {"8.1", "8.2", "8.3", "8.4", "8.5"} <= sections, sorted(sections)
    assert pitfalls == 12


def test_the_documents_are_found() -> None:
    names = set(SOURCES)
    assert {"README.md", "docs/theory.md", "docs/api.md", "docs/rules.md",
            "docs/how-it-works.md", "benchmarks/README.md", "rules/catalogue.toml",
            "rules/docs.toml"} <= names


@pytest.mark.parametrize("source", SOURCES)
def test_links_resolve_inside_the_repository(source: str) -> None:
    text, folder = _text(source)
    here = None if source == EXPLAIN else REPO / source
    assert _broken_links(text, folder, here) == [], source


@pytest.mark.parametrize("source", SOURCES)
def test_file_references_resolve(source: str) -> None:
    text, folder = _text(source)
    assert _broken_mentions(text, folder) == [], source


@pytest.mark.parametrize("source", SOURCES)
def test_theory_citations_name_existing_sections(source: str) -> None:
    text, _ = _text(source)
    assert _bad_citations(text) == [], source


@pytest.mark.parametrize("source", SOURCES)
def test_no_reference_to_the_internal_spec(source: str) -> None:
    text, _ = _text(source) if source == EXPLAIN else ((REPO / source).read_text("utf-8"), None)
    assert [f for f in FORBIDDEN if f in text] == [], source


def test_the_checks_catch_what_they_guard() -> None:
    """The checkers themselves: each kind of broken reference is reported."""
    docs = REPO / "docs"
    assert _broken_links("[x](missing.md) [y](theory.md#no-such-heading)", docs, None)
    assert _broken_links("[up](../../outside.md)", docs, None)
    assert not _broken_links("[t](theory.md#8-optimizer-families) [w](https://x.y/z.md)", docs,
                             None)
    assert _broken_mentions("see theory.md §4", REPO)  # a citation from the root needs docs/
    assert _broken_mentions("see tests/test_nothing_here.py", REPO)
    assert not _broken_mentions("docs/theory.md §4, tpcheck/rules/docs.toml, path/to/file.py",
                                REPO)
    assert _bad_citations("docs/theory.md §9") and _bad_citations("docs/theory.md §6 pitfall 13")
    assert _bad_citations("docs/theory.md §3 (gloss) and §8.9")
    assert not _bad_citations("docs/theory.md §4 (logits) and §7; TP5 §9")
