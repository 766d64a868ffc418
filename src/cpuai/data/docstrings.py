"""Python's own documentation strings as a real, offline text corpus.

The standard library's source files are parsed with ``ast`` (nothing is imported, so no module runs
its side effects), walked in sorted order, and every module, class and function docstring is cleaned
to its first paragraph, filtered for length and de-duplicated. The result is deterministic for a
given Python version and needs no download. ``paraphrase_pairs()`` gives hand-written queries whose
obviously related docstring is known, for text-search checks.

    >>> from cpuai.data.docstrings import docstrings
    >>> texts = docstrings(limit=1000, seed=0)   # 1000 sentences, same ones every run
"""

from __future__ import annotations

import ast
import functools
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from cpuai.errors import ConfigError, DataError

# Packages of the standard library that hold tests, GUIs, vendored code or templates, not API docs.
_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
     "site-packages", "dist-packages", "__pycache__", "pydoc_data", "venv", "config-3.11-x86_64-linux-gnu"}
)
_SKIP_FILES = frozenset({"antigravity.py", "this.py", "turtle.py", "__main__.py"})
_MIN_WORDS = 4
_MAX_CHARS = 600
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")


@dataclass(frozen=True)
class Docstring:
    """One cleaned docstring: ``name`` is the dotted path of its object (``json.dumps``), ``text`` the paragraph."""

    name: str
    text: str


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in _SKIP_DIRS or p.startswith("test_") for p in rel[:-1]):
            continue
        if path.name in _SKIP_FILES or path.name.startswith("test_"):
            continue
        files.append(path)
    return files


def clean(doc: str) -> str | None:
    """First paragraph of a docstring on one line, or None if it is too short or is only a signature."""
    import inspect

    paragraphs = [p for p in re.split(r"\n\s*\n", inspect.cleandoc(doc)) if p.strip()]
    for para in paragraphs[:2]:
        text = " ".join(para.split())
        if _SIGNATURE.match(text) or text.startswith((">>>", "Usage:", "usage:")):
            continue  # a bare signature line: the description is the next paragraph
        if len(text.split()) < _MIN_WORDS or len(text) > _MAX_CHARS:
            return None
        if "XXX" in text or "TODO" in text:
            return None
        return text
    return None


def _walk(tree: ast.AST, prefix: str):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name.startswith("_") and not node.name.startswith("__init__"):
                continue
            name = f"{prefix}.{node.name}"
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield name, doc
            if isinstance(node, ast.ClassDef):
                yield from _walk(node, name)


@functools.lru_cache(maxsize=4)
def _records(root: str) -> tuple[Docstring, ...]:
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"the Python standard library was not found at {root!r}",
                        fix="run with a CPython installation that ships its .py sources")
    seen: set[str] = set()
    out: list[Docstring] = []
    for path in _source_files(base):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        module = _module_name(base, path)
        if any(part.startswith("_") for part in module.split(".")):
            continue  # private modules mostly repeat their public twin
        items = []
        mod_doc = ast.get_docstring(tree, clean=False)
        if mod_doc:
            items.append((module, mod_doc))
        items.extend(_walk(tree, module))
        for name, doc in items:
            text = clean(doc)
            if text is None:
                continue
            key = text.lower()
            if key in seen:
                continue
            seen.add(key)
            out.append(Docstring(name, text))
    if not out:
        raise DataError(f"no docstrings found under {root!r}", fix="check that the stdlib .py files exist")
    return tuple(out)


def docstring_records(limit: int | None = None, seed: int = 0) -> list[Docstring]:
    """Cleaned, de-duplicated stdlib docstrings with their dotted names; ``limit`` draws a seeded sample.

    The sample keeps corpus order, so the same ``(limit, seed)`` always gives the same list.
    """
    records = list(_records(str(_stdlib_root())))
    if limit is None:
        return records
    if limit <= 0:
        raise ConfigError(f"limit must be a positive number of docstrings, got {limit}",
                          fix="pass limit=None for all of them or a count such as 20000")
    if limit >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in keep]


def docstrings(limit: int | None = None, seed: int = 0) -> list[str]:
    """Texts of :func:`docstring_records`: Python's own docstrings as a list of sentences."""
    return [r.text for r in docstring_records(limit, seed)]


# Hand-written paraphrases of what a stdlib object does, and the object whose docstring says it.
_PARAPHRASES: tuple[tuple[str, str], ...] = (
    ("compute the square root of a number", "math.sqrt"),
    ("turn a Python object into a JSON formatted string", "json.dumps"),
    ("make a deep copy of an object, copying nested objects too", "copy.deepcopy"),
    ("find all the non-overlapping regex matches in a string", "re.findall"),
    ("create a temporary folder that gets removed afterwards", "tempfile.TemporaryDirectory"),
    ("delete a whole directory tree recursively", "shutil.rmtree"),
    ("decode a base64 encoded bytes object", "base64.b64decode"),
    ("compute the greatest common divisor of integers", "math.gcd"),
    ("sleep or pause execution for a number of seconds", "time.sleep"),
    ("pick a random element from a non-empty sequence", "random.Random.choice"),
    ("compute the arithmetic mean average of data", "statistics.mean"),
    ("count hashable items like a bag or multiset", "collections.Counter"),
)


def paraphrase_pairs() -> list[tuple[str, Docstring]]:
    """(paraphrased query, the docstring it should retrieve) for every pair whose target is in the corpus."""
    by_name = {r.name: r for r in _records(str(_stdlib_root()))}
    return [(query, by_name[name]) for query, name in _PARAPHRASES if name in by_name]
