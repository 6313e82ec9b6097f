"""What the commands share: exit codes, argument types, atomic writes and the messages for a
user's mistake with files. `tlc.cli` and `tlc.llm.command` both import it, so neither
imports the other."""
from __future__ import annotations

import argparse
import os
import tempfile

EXIT_OK, EXIT_DIAGNOSTICS, EXIT_USAGE = 0, 1, 2


def arch(value: str) -> str:
    """An `--arch` value: a known target or `all`, else a usage error with the closest name."""
    from tlc.arch import ARCH_NAMES, suggest_arch

    if value in ARCH_NAMES or value == "all":
        return value
    guess = suggest_arch(value)
    hint = f"; did you mean {guess}?" if guess else ""
    raise argparse.ArgumentTypeError(
        f"unknown arch {value!r}{hint} (known: {', '.join(ARCH_NAMES)})")


def arch_one(value: str) -> str:
    """An `--arch` value naming one target (not `all`)."""
    if value == "all":
        raise argparse.ArgumentTypeError("name one target here; `all` is for `tlc check`")
    return arch(value)


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def output_folder_problem(path: str) -> str | None:
    """Why `path` cannot be the folder a command writes into, or None if it can be (it exists
    as a folder, or can be created)."""
    if os.path.isdir(path):
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    if os.path.lexists(path):
        return f"-o {path} is a file, not a directory; give -o a folder (the file is left as it is)"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot create {path}: {parent} is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent} is not writable"
    return None


def output_file_problem(path: str) -> str | None:
    """Why a new file cannot be written at `path`, or None: its folder must exist (or be
    creatable) and be writable, and `path` must not be a folder."""
    if os.path.isdir(path):
        return f"{path} is a directory; name a file"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"cannot write {path}: the folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {path}: {folder} is not writable"
    return None


def write_atomically(path: str, text: str, create: bool = False) -> None:
    """Replace a file's contents so that a crash leaves either the old or the new file."""
    folder = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) or not create else 0o644
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, delete=False,
                                         prefix=".tlc-fmt-", suffix=".tmp", newline="")
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise
