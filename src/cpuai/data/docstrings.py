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
import json
import os
import platform
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from cpuai.errors import ConfigError, DataError

# Packages of the standard library that hold tests, GUIs, vendored code or templates, not API docs.
_SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "lib2to3",
        "ensurepip",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "pydoc_data",
        "venv",
        "config-3.11-x86_64-linux-gnu",
    }
)
_SKIP_FILES = frozenset({"antigravity.py", "this.py", "turtle.py", "__main__.py"})
# C modules have no .py source; these are imported (they have no side effects) and read by attribute.
_C_MODULES = ("builtins", "math", "cmath", "time", "itertools", "sys", "gc", "binascii", "zlib")
_MIN_WORDS = 4
_CACHE_VERSION = 1
_MAX_CHARS = 600
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.*)?$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODE = re.compile(r"(^[-=*]{3,})|(\s{2,}\S)|(^\W+$)")
UNITS = ("first", "paragraph", "sentence")


@dataclass(frozen=True)
class Docstring:
    """One cleaned docstring: ``name`` is its object's dotted path (``json.dumps``), ``text`` the prose."""

    name: str
    text: str


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _package_dir(package: str) -> Path:
    """Source directory of an installed package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the package {package!r} is not installed as a source package",
            fix="pass an installed pure-Python package name such as 'numpy', or none",
        )
    return Path(next(iter(spec.submodule_search_locations)))


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


def _usable(text: str) -> bool:
    return (
        len(text.split()) >= _MIN_WORDS
        and len(text) <= _MAX_CHARS
        and "XXX" not in text
        and "TODO" not in text
        and not _CODE.search(text)
    )


def paragraphs(doc: str) -> list[str]:
    """Prose paragraphs of a docstring, each on one line; signatures, doctests and code lines dropped."""
    import inspect

    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        text = " ".join(para.split())
        if not text or _SIGNATURE.match(text) or text.startswith((">>>", "...", "Usage:", "usage:", "$ ")):
            continue
        out.append(text)
    return out


def clean(doc: str) -> str | None:
    """First paragraph of a docstring on one line, or None if it is too short or is only a signature."""
    paras = paragraphs(doc)[:1]
    return paras[0] if paras and _usable(paras[0]) else None


def _units(doc: str, unit: str) -> list[str]:
    if unit == "first":
        text = clean(doc)
        return [text] if text else []
    paras = [p for p in paragraphs(doc) if _usable(p)]
    if unit == "paragraph":
        return paras
    return [s for p in paras for s in _SENTENCE.split(p) if _usable(s)]


def _walk(tree: ast.AST, prefix: str):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}.{node.name}"
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield name, doc
            if isinstance(node, ast.ClassDef):
                yield from _walk(node, name)


def _sources(packages: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(root the dotted names are relative to, tree to walk) for the stdlib and each extra package."""
    stdlib = _stdlib_root()
    if not stdlib.is_dir():
        raise DataError(
            f"the Python standard library was not found at {str(stdlib)!r}",
            fix="run with a CPython installation that ships its .py sources",
        )
    out = [(stdlib, stdlib)]
    for package in packages:
        tree = _package_dir(package)
        out.append((tree.parent, tree))
    return out


def _c_module_docs() -> list[tuple[str, str]]:
    import importlib
    import inspect

    items = []
    for module_name in _C_MODULES:
        module = importlib.import_module(module_name)
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if attr.startswith("_") or not (inspect.isbuiltin(obj) or inspect.isclass(obj)):
                continue
            if isinstance(obj.__doc__, str):
                items.append((f"{module_name}.{attr}", obj.__doc__))
    return items


def _cache_file(unit: str, packages: tuple[str, ...]) -> Path:
    base = Path(os.environ.get("CPUAI_CACHE_DIR") or Path.home() / ".cache" / "cpuai")
    tag = "-".join((platform.python_version(), unit, *packages))
    return base / "docstrings" / f"{tag}-v{_CACHE_VERSION}.json"


@functools.lru_cache(maxsize=8)
def _records(unit: str = "first", packages: tuple[str, ...] = ()) -> tuple[Docstring, ...]:
    """Parse (or read the on-disk cache of) the corpus; parsing the stdlib takes ~5-10 s, the cache ~50 ms."""
    cache = _cache_file(unit, packages)
    try:
        return tuple(Docstring(n, t) for n, t in json.loads(cache.read_text()))
    except (OSError, ValueError):
        pass
    records = _parse(unit, packages)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([[r.name, r.text] for r in records]))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs the parse next time
    return records


def _parse(unit: str, packages: tuple[str, ...]) -> tuple[Docstring, ...]:
    seen: set[str] = set()
    out: list[Docstring] = []
    for name, doc in _c_module_docs():
        for text in _units(doc, unit):
            if text.lower() not in seen:
                seen.add(text.lower())
                out.append(Docstring(name, text))
    files = [(base, path) for base, tree in _sources(packages) for path in _source_files(tree)]
    for base, path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        module = _module_name(base, path)
        items = []
        mod_doc = ast.get_docstring(tree, clean=False)
        if mod_doc:
            items.append((module, mod_doc))
        items.extend(_walk(tree, module))
        for name, doc in items:
            for text in _units(doc, unit):
                key = text.lower()
                if key in seen:
                    continue
                seen.add(key)
                out.append(Docstring(name, text))
    if not out:
        raise DataError(
            "no docstrings found in the Python standard library",
            fix="run with a CPython installation that ships its .py sources",
        )
    return tuple(out)


def docstring_records(
    limit: int | None = None, seed: int = 0, *, unit: str = "first", packages: tuple[str, ...] = ()
) -> list[Docstring]:
    """Cleaned, de-duplicated stdlib docstrings with their dotted names; ``limit`` draws a seeded sample.

    ``unit`` is ``"first"`` (first paragraph of each object, ~5.6k texts on CPython 3.11),
    ``"paragraph"`` (every prose paragraph, ~10k) or ``"sentence"`` (every sentence, ~13.6k);
    ``packages`` adds installed packages' own docstrings (``("numpy",)`` takes sentences past 20k).
    The sample keeps corpus order, so the same arguments always give the same list.
    """
    if unit not in UNITS:
        raise ConfigError(f"unknown docstring unit {unit!r}", fix=f"use one of {', '.join(UNITS)}")
    records = list(_records(unit, tuple(packages)))
    if limit is None:
        return records
    if limit <= 0:
        raise ConfigError(
            f"limit must be a positive number of docstrings, got {limit}",
            fix="pass limit=None for all of them or a count such as 20000",
        )
    if limit >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in keep]


def docstrings(
    limit: int | None = None, seed: int = 0, *, unit: str = "first", packages: tuple[str, ...] = ()
) -> list[str]:
    """Texts of :func:`docstring_records`: Python's own docstrings as a list of strings."""
    return [r.text for r in docstring_records(limit, seed, unit=unit, packages=packages)]


# Hand-written paraphrases of what a stdlib object does, and the object whose docstring says it.
_PARAPHRASES: tuple[tuple[str, str], ...] = (
    ("compute the square root of a number", "math.sqrt"),
    ("serialize an object into a JSON string", "json.dumps"),
    ("make a deep copy of an object, copying nested objects too", "copy.deepcopy"),
    ("find all the non-overlapping regex matches in a string", "re.findall"),
    ("create a temporary folder that gets removed afterwards", "tempfile.TemporaryDirectory"),
    ("delete a whole directory tree recursively", "shutil.rmtree"),
    ("decode a base64 encoded bytes object", "base64.b64decode"),
    ("compute the greatest common divisor of integers", "math.gcd"),
    ("pause the program for a number of seconds", "time.sleep"),
    ("pick a random element from a non-empty sequence", "random.Random.choice"),
    ("compute the arithmetic mean average of data", "statistics.mean"),
    ("count hashable items like a bag or multiset", "collections.Counter"),
)


def paraphrase_pairs() -> list[tuple[str, Docstring]]:
    """(paraphrased query, the docstring it should retrieve) for every pair whose target is in the corpus."""
    by_name = {r.name: r for r in _records("first")}
    return [(query, by_name[name]) for query, name in _PARAPHRASES if name in by_name]
