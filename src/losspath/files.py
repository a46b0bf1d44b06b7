"""Files losspath writes: atomic, checksummed, and never written through something that is not a regular file.

- `atomic_write` writes a temporary file next to the target and renames it into place, so a reader never
  sees half a file. It refuses a target that exists and is not a regular file (a symlink, FIFO, device or
  directory), and first removes temporary files that writers on this host left behind when they died.
- `save_checksummed` / `load_checksummed` (safetensors) and `write_json` / `read_json` record a sha256 of
  the content at write time and check it on read: a damaged file raises `DamagedFile`, naming it.
- `check_output_file` / `check_output_dir` test an output path before any work starts.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import LosspathError

CHECKSUM_KEY = "sha256"
RETRAIN = ("rerun the command that trained this run (losspath train with the same options, or the study): "
           "it checks the run and retrains what is damaged")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp$")


class DamagedFile(LosspathError):
    """A file losspath wrote earlier no longer reads back as written (truncated, overwritten, bit-flipped)."""

    def __init__(self, path: Path, reason: str, advice: str = "delete it and rerun the command that wrote it"):
        self.path, self.reason = Path(path), reason
        super().__init__(f"File {path} is damaged ({reason}); {advice}.")


class FileWriteError(LosspathError, OSError):
    """Writing an output failed (no space, read-only file system, no permission): one sentence for the CLI,
    still an OSError for callers that treat a failed write as optional."""


def notice(message: str) -> None:
    """One line on stderr about something losspath repaired on its own (a recomputed cache, a restarted run)."""
    print(f"notice: {message}", file=sys.stderr, flush=True)


# --- output paths -------------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def refuse_non_regular(path: Path, option: str = "The output") -> None:
    """Raise if `path` exists and is not a regular file (symlinks are not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent (a file in its path is reported by the probe)
        return
    except OSError as e:
        raise LosspathError(f"{option} {path} cannot be used ({e.strerror}).") from None
    if not stat.S_ISREG(mode):
        raise LosspathError(f"{option} {path} exists and is {_kind(mode)}; losspath writes only regular files "
                            "and will not replace it.")


def _probe_directory(directory: Path, option: str, path: Path) -> None:
    """Create (and remove) a file in `directory`, or in its nearest existing ancestor when it does not exist
    yet: the real test of writability (as root, permission bits do not tell), and nothing is left behind."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LosspathError(f"{option} {path} lies under {existing}, which is a file, not a directory.")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".losspath-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise LosspathError(f"{option} {path} cannot be written ({e.strerror or e}).") from None


def check_output_file(path: str | Path | None, option: str = "--out") -> None:
    """Before any work: `path` is a regular file or absent, and its directory can take new files."""
    if path is None:
        return
    path = Path(path)
    refuse_non_regular(path, option)
    _probe_directory(path.parent, option, path)


def check_output_dir(path: str | Path | None, option: str = "--out") -> None:
    """Before any work: `path` is a directory (or can be made one) in which files can be created."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LosspathError(f"{option} {path} exists and is not a directory.")
    _probe_directory(path, option, path)


# --- atomic writes ------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: Path) -> None:
    """Remove temporary files in `directory` left by writers on this host whose process is gone."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)` on a temporary file next to `path`, then rename it into place.

    A reader never sees a half-written file, and an interrupted write leaves no file at `path` (its temporary
    file is removed by the next write to that directory).
    """
    path = Path(path)
    refuse_non_regular(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileWriteError(f"Could not create the directory {path.parent} ({e.strerror or e}).") from None
    remove_stale_temps(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise FileWriteError(f"Could not write {path} ({e.strerror or e}).") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        raise FileWriteError(f"Could not write {path} ({getattr(e, 'strerror', None) or e}).") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


# --- checksummed safetensors ----------------------------------------------------------------------------


def tensors_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """sha256 over the metadata (less the checksum) and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in metadata.items() if k != CHECKSUM_KEY},
                                  sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"\n{name}|{t.dtype}|{list(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checksummed(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write `tensors` as safetensors, atomically, with their sha256 in the metadata; returns the digest."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = dict(metadata or {})
    meta[CHECKSUM_KEY] = tensors_digest(tensors, meta)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return meta[CHECKSUM_KEY]


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; `DamagedFile` when it does not parse."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise DamagedFile(path, f"not a readable safetensors file: {str(e).splitlines()[0][:120]}") from None
    return tensors, meta


def load_checksummed(path: Path, required: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a file written by `save_checksummed`, after checking its sha256.

    `required=False` accepts a file without a checksum (one the user wrote); a wrong checksum is always an error.
    """
    tensors, meta = read_safetensors(path)
    recorded = meta.get(CHECKSUM_KEY)
    if recorded is None:
        if required:
            raise DamagedFile(path, "it carries no checksum: damaged, or written by an older losspath")
        return tensors, meta
    if tensors_digest(tensors, meta) != recorded:
        raise DamagedFile(path, "its content does not match the checksum recorded when it was written")
    return tensors, meta


# --- checksummed JSON -----------------------------------------------------------------------------------


def json_digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _json_text(body: dict) -> str:
    return json.dumps({**body, CHECKSUM_KEY: json_digest(body)}, indent=2, sort_keys=True) + "\n"


def write_json(path: Path, obj: dict) -> None:
    """Write a dict as JSON, atomically, with a `sha256` field over the rest."""
    atomic_write_text(path, _json_text({k: v for k, v in obj.items() if k != CHECKSUM_KEY}))


def read_json(path: Path, required: bool = True) -> dict:
    """The dict `write_json` wrote (without its checksum field); `DamagedFile` when the file is not, byte for
    byte, what `write_json` wrote (the checksum covers the content, the comparison the layout)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
        obj = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedFile(path, f"not valid JSON: {str(e)[:80]}") from None
    if not isinstance(obj, dict):
        raise DamagedFile(path, "not a JSON object")
    recorded = obj.pop(CHECKSUM_KEY, None)
    if recorded is None:
        if required:
            raise DamagedFile(path, "it carries no checksum: damaged, or written by an older losspath")
        return obj
    if recorded != json_digest(obj):
        raise DamagedFile(path, "its content does not match the checksum recorded when it was written")
    if text != _json_text(obj):
        raise DamagedFile(path, "its bytes differ from those written (spacing or line ends changed)")
    return obj


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
