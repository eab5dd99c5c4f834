"""A run directory's life outside its units: where it may be created, starting over, the thread count.

A run goes only into a new, empty or earlier shiftlens run directory (never ``--out ''``, never a folder
of other files); ``--force`` deletes a run's files, and only a shiftlens run's, before starting over. The
manifest records the command and the thread count, since float reductions differ with the thread count.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from shiftlens.atomic import StorageError
from shiftlens.errors import ShiftlensError
from shiftlens.runs.errors import OldRunFormat, WrongRunKind
from shiftlens.storage import FORMAT, FORMAT_VERSION, json_object

MANIFEST = "manifest.json"
MAX_UNIT_NAME = 100  # unit file names stay far below the 255 bytes file systems allow
THREADS_NOTE = (
    "float results may differ by about 1e-9..1e-6 between thread counts (the order of reductions); "
    "units stored under different counts are each exact for their own"
)


def unit_file_name(key: str) -> str:
    """A safe, bounded unit name for a key such as an example id: unsafe characters replaced, long keys cut.

    A name that differs from its key gets 8 hex digits of the key's sha256, so two keys never share a
    file; the key itself stays in the unit's record.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key).lstrip(".") or "_"
    if safe == key and len(key) <= MAX_UNIT_NAME:
        return key
    return f"{safe[: MAX_UNIT_NAME - 9]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def rerun_hint(run: Path) -> str:
    """Which command recomputes a unit of ``run``: the run's own, or the `compare` it is a step of."""
    top, manifest = run, {}
    for folder in [run, *run.parents]:  # the outermost compare run holding this one, else this run
        found = json_object(folder / MANIFEST)
        if "kind" in found and (folder == run or found.get("kind") == "compare"):
            top, manifest = folder, found
    command = manifest.get("command")
    kind = manifest.get("kind", "shiftlens")
    if command:
        return f"rerun `{command}` (the command that wrote {top})"
    return f"rerun the same {kind} command (or library call) that wrote {top}"


OPENED_BEFORE = ("answers.jsonl",)  # the LLM annotator's answer cache (`shiftlens.ffn.answer_cache.CACHE_FILE`)


def _ours(name: str) -> bool:
    """A file a run writes before its manifest exists (locks, the manifest's temporary file, the answer cache)."""
    return name.startswith((".lock", f".{MANIFEST}.")) or name in OPENED_BEFORE


def notice(message: str) -> None:
    """One line to stderr, for what a run does on its own (a deletion, a resume under other conditions)."""
    print(f"shiftlens: {message}", file=sys.stderr)


def check_out(path: str | Path) -> Path:
    """``path`` as a run directory's place: refused when empty (``--out ''``) or a non-empty folder of other files."""
    if not str(path).strip():
        raise StorageError("the output directory is empty (--out ''): name a directory for the run")
    path = Path(path)
    if path.is_dir() and not (path / MANIFEST).exists():
        foreign = sorted(p.name for p in path.iterdir() if not _ours(p.name))
        if foreign:
            raise StorageError(
                f"{path} is not empty and holds no shiftlens run (no {MANIFEST}; it has {foreign[0]!r}"
                f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}): give a new or empty --out"
            )
    return path


def remove_run(path: Path, why: str, keep: Collection[str] = ()) -> None:
    """Delete the files of the shiftlens run at ``path`` but ``keep`` (only a run with a manifest), saying what."""
    if not (path / MANIFEST).exists():
        return
    entries = sorted(p for p in path.iterdir() if not p.name.startswith(".lock") and p.name not in keep)
    notice(f"{why}: deleting {path}'s run ({', '.join(p.name + ('/' if p.is_dir() else '') for p in entries)})")
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def invocation() -> str | None:
    """The `shiftlens` command line this process runs, without --force and --shard (None when not the CLI)."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is None or not (program.name == "shiftlens" or program.parts[-3:] == ("shiftlens", "cli", "main.py")):
        return None
    words, argv = ["shiftlens"], sys.argv[1:]
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--shard":
            skip = True
        elif word != "--force" and not word.startswith("--shard="):
            words.append(word)
    return shlex.join(words)


def threads_record() -> dict[str, Any]:
    """The manifest's record of this process's torch thread count, with what another count changes."""
    import torch

    return {"torch": torch.get_num_threads(), "note": THREADS_NOTE}


def resumed(path: Path, manifest: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The manifest fields a resume changes: an extended run's params, this command, another thread count (said)."""
    updates: dict[str, Any] = {"params": params} if manifest.get("params") != params else {}
    command = invocation()
    if command and command != manifest.get("command"):
        updates["command"] = command  # the command to rerun is the latest one
    stored, now = manifest.get("threads") or {}, threads_record()["torch"]
    if stored.get("torch") not in (None, now):
        notice(
            f"{path} was started with {stored['torch']} torch threads and resumes with {now}: "
            "new units may differ from stored ones by about 1e-9..1e-6 (float reduction order)"
        )
        updates["threads"] = {**stored, "resumed_with": sorted({*stored.get("resumed_with", []), now})}
    return updates


def refusal(path: Path, manifest: dict[str, Any], kind: str) -> ShiftlensError | None:
    """Why an existing run directory cannot be resumed as a ``kind`` run (another kind or format), if it cannot."""
    if manifest.get("format") != FORMAT or manifest.get("kind") != kind:
        return WrongRunKind(path, manifest.get("kind"), kind)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        return OldRunFormat(
            f"{path} holds a run of format version {version} (shiftlens {'0.1' if version == 1 else 'unknown'}); "
            f"this shiftlens resumes format {FORMAT_VERSION} only: rerun into a new directory "
            "(analyses still read the old one)"
        )
    return None
