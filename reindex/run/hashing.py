"""sha256 and size of inputs and outputs, as the manifest records them; hashed on background threads."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def folder_files(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every file below a folder, sorted by relative path."""
    root = Path(path)
    found = []
    for parent, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            file = Path(parent) / name
            if file.is_file():  # a FIFO or socket would block the hash; no reader opens one either
                found.append((file.relative_to(root).as_posix(), file))
    return sorted(found)


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 22, advance: Any = None) -> str:
    """Hex sha256 of a file, read in chunks; of a folder (a `save_to_disk` dataset), a digest of
    its files' relative paths and sha256s, so any change to any file, name or set of files shows.
    `advance(n)` (a progress bar) is told the size of each chunk read."""
    if os.path.isdir(path):
        digest = hashlib.sha256()
        for name, file in folder_files(path):
            hashed = sha256_file(file, chunk_bytes=chunk_bytes, advance=advance)
            digest.update(f"{name}\0{hashed}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
            if advance is not None:
                advance(len(block))
    return digest.hexdigest()


def size_of(path: str | os.PathLike) -> int:
    """Bytes of a file, or of all the files below a folder."""
    if os.path.isdir(path):
        return sum(file.stat().st_size for _, file in folder_files(path))
    return os.stat(path).st_size


def describe_file(path: str | os.PathLike, *, name: str | None = None) -> dict[str, Any]:
    """{"path", "size", "sha256"} of a file (or a folder: see `sha256_file`), as the manifest records
    inputs and outputs."""
    path = Path(path)
    return {"path": name if name is not None else str(path), "size": size_of(path),
            "sha256": sha256_file(path)}


class FileHashes:
    """`describe_file` records computed on background threads, asked for when the manifest is written.

    hashlib releases the GIL on large buffers, so hashing inputs while they are parsed and outputs
    while the embedding is written costs little wall time on a second core.
    """

    def __init__(self, workers: int = 2) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reindex-sha256")
        self._futures: dict[str, Any] = {}

    def start(self, path: str | os.PathLike) -> None:
        key = os.fspath(path)
        if key not in self._futures:
            self._futures[key] = self._pool.submit(describe_file, path)

    def put(self, path: str | os.PathLike, record: dict[str, Any]) -> None:
        """A {"size", "sha256"} record computed elsewhere (a reader that hashed the file as it read it)."""
        from concurrent.futures import Future

        done: Future = Future()
        done.set_result({"path": str(path), **record})
        self._futures[os.fspath(path)] = done

    def describe(self, path: str | os.PathLike, *, name: str | None = None) -> dict[str, Any]:
        self.start(path)
        record = dict(self._futures[os.fspath(path)].result())
        return record if name is None else {**record, "path": name}

    def __enter__(self) -> FileHashes:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
