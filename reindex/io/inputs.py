"""The inputs registry: every file a command reads, in one place that the output rule checks `--out` against.

A command registers what it reads as it learns it: its path options (every `path()` field of its option
groups, so a new option cannot be forgotten), each file a glob or a folder expands to, and each input a
RUN records. `reindex.io.outputs.check_output` then refuses an `--out` that is, holds or lies inside any.

    inputs = Inputs(); inputs.add("--vocab", "vocab.txt"); inputs.add_files("DATA", ["a.npy"])
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Inputs:
    """(what named it, path) for every input of one command, in the order they were registered."""

    entries: list[tuple[str, Path]] = field(default_factory=list)

    def add(self, what: str, path: str | os.PathLike | None) -> None:
        """Register one input (`what`: the option or argument that named it); None is skipped."""
        if path is not None:
            self.entries.append((what, Path(os.fspath(path))))

    def add_files(self, what: str, paths: Iterable[str | os.PathLike]) -> None:
        for one in paths:
            self.add(what, one)

    def add_options(self, options: Any) -> None:
        """Every input an option group names (its `path()` fields, nested groups included)."""
        for flag, value in options.input_paths():
            self.add(flag, value)

    def add_recorded(self, run: Path, manifest: object) -> None:
        """The inputs a RUN's manifest records, as they may be resolved today.

        A run records paths as the user typed them, relative to wherever `build` ran. That folder is not
        recorded, so a relative path is registered as seen from the run's parent folder, from the run
        folder itself and from the current folder: whichever is meant, it is never written over.
        """
        for recorded in recorded_paths(manifest):
            if Path(recorded).is_absolute():
                self.add("an input RUN records", recorded)
                continue
            for base in (run.parent, run, Path.cwd()):
                self.add("an input RUN records", base / recorded)

    def __iter__(self) -> Iterator[tuple[str, Path]]:
        return iter(self.entries)


def recorded_paths(manifest: object) -> list[str]:
    """The `path` of every input a manifest records (vocab, vectors, data, weights, subword_model)."""
    inputs = manifest.get("inputs") if isinstance(manifest, dict) else None
    found = []
    for value in inputs.values() if isinstance(inputs, dict) else []:
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"] != "-":
                found.append(entry["path"])
    return found
