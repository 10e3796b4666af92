"""Where things live: every path is built from the project root (or an environment override)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Callable

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Folder for generated and cached data (the built-in dataset); `FFN_DATA_DIR` overrides it."""
    return Path(os.environ.get("FFN_DATA_DIR", PROJECT_ROOT / "data"))


def runs_dir() -> Path:
    """Folder for run outputs; `FFN_RUNS_DIR` overrides it."""
    return Path(os.environ.get("FFN_RUNS_DIR", PROJECT_ROOT / "runs"))


def project_path(path: str | Path, root: str | Path = PROJECT_ROOT) -> Path:
    """A path from a config or notebook parameter: `~` expanded, a relative path taken from `root`, the
    project root (not the working directory, which is notebooks/ under Jupyter and papermill)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(root) / path


_TEMPORARY = ".tmp-"  # `write_atomic` writes `.<name>.tmp-<pid>` next to the file, then renames it


def temporary_path(path: str | Path, suffix: str = "") -> Path:
    """Where this process writes `path` before renaming it: `.<name>.tmp-<pid><suffix>` beside it (the
    name `leftover_temporaries` finds). `suffix` keeps a file type a writer needs (`.webm` for PyAV)."""
    path = Path(path)
    return path.with_name(f".{path.name}{_TEMPORARY}{os.getpid()}{suffix}")


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file's bytes (`algorithm`: a hashlib name), read 1 MiB at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], fsync: bool = False) -> Path:
    """Call `write(f)` on a temporary file `.<name>.tmp-<pid>` in `path`'s folder, then rename it over
    `path`: a kill at any moment leaves the old file or the new one, never part of one. `fsync` also
    flushes the bytes to disk before the rename (for files that must survive a crash of the machine)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def leftover_temporaries(folder: str | Path) -> list[Path]:
    """The temporary files `write_atomic` left in `folder` when its process was killed mid-write."""
    return sorted(Path(folder).glob(f".*{_TEMPORARY}*"))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`text` (UTF-8) into `path` through `write_atomic`."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def configs_dir() -> Path:
    return PROJECT_ROOT / "configs"
