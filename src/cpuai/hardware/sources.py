"""Raw readings under a root directory: files of /proc and /sys, lscpu output, executables.

Every path is taken under ``root`` so that tests feed recorded trees of other machines; a file
that cannot be read is ``None``, never an exception, and the caller names it in
``MachineInfo.unknown``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path


def read_text(path: Path) -> str | None:
    """The text of a file, or None when it is missing or unreadable."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def to_int(text: str | None) -> int | None:
    """An integer reading (surrounding whitespace allowed), or None when absent or not a number."""
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def parse_cpuinfo(text: str | None) -> list[dict[str, str]]:
    """The blocks of /proc/cpuinfo, one ``{key: value}`` per logical CPU."""
    if not text:
        return []
    blocks: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        entry: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line:
                key, _, value = line.partition(":")
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def lscpu_text(root: Path, lscpu: str | Path | None, live: bool) -> str | None:
    """lscpu output: from the given file, ``<root>/lscpu.txt`` for a recorded tree, else the command."""
    if lscpu is not None:
        return read_text(Path(lscpu))
    if not live:
        return read_text(root / "lscpu.txt")
    exe = shutil.which("lscpu")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_lscpu(text: str) -> dict[str, str]:
    """lscpu's ``Key: value`` lines as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def which(name: str, r: Path, live: bool) -> str | None:
    """Path of executable ``name`` on the machine under ``r`` (PATH live, the usual bin dirs recorded)."""
    if live:
        return shutil.which(name)
    for d in ("usr/bin", "bin", "usr/local/bin", "usr/sbin"):
        if (r / d / name).exists():
            return as_seen_on_machine(r / d / name, r)
    return None


def as_seen_on_machine(path: Path, root: Path) -> str:
    """A path under a recorded tree as that machine sees it (``<root>/usr/bin/x`` -> ``/usr/bin/x``)."""
    try:
        return "/" + str(path.relative_to(root)) if root.resolve() != Path("/") else str(path)
    except ValueError:
        return str(path)
