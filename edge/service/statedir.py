"""The state directory: checked at start, private, locked, and written without following links.

`prepare_state_dir` runs before anything is restored (and in `seqcast-edge check`): it creates the
directory (0700) or tightens an existing one to 0700 and the regular files in it that belong to its
owner to 0600 (group and other bits removed), proves it is writable with a probe file, and checks
the free space. Every problem is one `StateDirError` line such as
``state.dir: /var/lib/seqcast is not writable (Read-only file system)``.

A state directory that is itself a symlink is refused (``... is a symlink (to /x); set state.dir
to the directory itself``): the daemon then knows which file system it checked and locked. Links
above the last component are followed as usual. Nothing inside the directory is followed: files
are opened with ``O_NOFOLLOW``, symlinks and subdirectories are left alone.

`StateLock` holds ``flock(LOCK_EX | LOCK_NB)`` on ``<dir>/lock`` (which records the holder's pid)
for the daemon's lifetime, so a second daemon on the same directory refuses to start. The lock
file is never removed (removing a flock file races with the next locker).

`atomic_write` replaces a file through a temp file with a random name created with
``O_CREAT | O_EXCL | O_NOFOLLOW``: a symlink planted in the directory is never written through.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from seqcast.edge.config import ConfigError

MIN_FREE_BYTES = 16 * 1024 * 1024  # the default outbox size; a snapshot is far smaller
LOCK_FILE = "lock"
# what service/state.py keeps here (and service/replica.py copies to NATS)
SNAPSHOT_FILE = "streams.npz"
OUTBOX_FILE = "outbox.jsonl"
JOURNAL_FILE = "journal.bin"
PROBE_BYTES = 4096  # one page: a file system with no room left refuses it

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PEEK_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_FULL = (errno.ENOSPC, errno.EDQUOT)
# what a crashed writer leaves behind: atomic_write temps (old: pid, new: random) and check probes
_STALE = re.compile(r"\.[^/]+\.(\d+|[0-9a-f]{16})\.tmp|\.probe-[0-9a-f]{16}")


class StateDirError(ConfigError):
    """A state directory the daemon cannot use (not writable, full, a symlink, in use)."""


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale  # rounded down: never claims more room than there is
            return f"{int(value)} {unit}" if value >= 10 else f"{int(value * 10) / 10:g} {unit}"
    return f"{n} bytes"


def _owner_hint(st: os.stat_result) -> str:
    """'; owned by uid 0, running as uid 998' when the process is not the owner."""
    me = os.geteuid()
    return "" if st.st_uid == me else f"; owned by uid {st.st_uid}, running as uid {me}"


def _open_dir(path: Path) -> int:
    where = f"state.dir: {path}"
    try:
        return os.open(path, _DIR_FLAGS)
    except OSError as e:
        if path.is_symlink():  # ELOOP, or ENOTDIR since O_DIRECTORY is checked first
            target = os.readlink(path)
            raise StateDirError(
                f"{where} is a symlink (to {target}); set state.dir to the directory itself"
            ) from None
        if e.errno == errno.ENOTDIR:
            raise StateDirError(f"{where} is not a directory") from None
        hint = ""
        if e.errno == errno.EACCES:
            with contextlib.suppress(OSError):
                hint = _owner_hint(path.stat())
        raise StateDirError(f"{where} is not accessible ({_why(e)}{hint})") from None


def _unwritable(where: str, e: OSError, st: os.stat_result) -> StateDirError:
    if e.errno in _FULL:
        return StateDirError(f"{where} is full ({_why(e)})")
    hint = _owner_hint(st) if e.errno in (errno.EACCES, errno.EPERM) else ""
    return StateDirError(f"{where} is not writable ({_why(e)}{hint})")


def _tighten_files(dir_fd: int, owner: int, where: str, dir_st: os.stat_result) -> None:
    """Remove group and other bits from the regular files in the directory owned by `owner`."""
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue  # symlinks, subdirectories, sockets: not ours to change
            st = entry.stat(follow_symlinks=False)
            mode = stat.S_IMODE(st.st_mode)
            if st.st_uid != owner or mode == mode & 0o700:
                continue  # e.g. a root-owned model bundle the daemon reads through its group
            try:
                fd = os.open(entry.name, _PEEK_FILE, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except PermissionError:  # an owner-unreadable file; the directory is 0700 already
                fd = -1
            except OSError as e:
                raise _unwritable(where, e, dir_st) from None
            try:
                if fd < 0:
                    os.chmod(entry.name, mode & 0o700, dir_fd=dir_fd)
                elif stat.S_ISREG(os.fstat(fd).st_mode):
                    os.fchmod(fd, mode & 0o700)
            except OSError as e:
                name = f"{entry.name} (mode {mode:04o})"
                raise StateDirError(f"{where}: cannot make {name} private ({_why(e)})") from None
            finally:
                if fd >= 0:
                    os.close(fd)


def _probe(dir_fd: int, where: str, st: os.stat_result) -> None:
    """Create, write and remove a file: the only proof that the directory takes writes."""
    name = f".probe-{secrets.token_hex(8)}"
    try:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
    except OSError as e:
        raise _unwritable(where, e, st) from None
    try:
        os.write(fd, bytes(PROBE_BYTES))
    except OSError as e:
        raise _unwritable(where, e, st) from None
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)


def prepare_state_dir(path: Path, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Create or tighten the state directory and prove it takes writes; raise `StateDirError`
    (one line) when it is a symlink, not a directory, not writable or short of space."""
    path = Path(path)
    where = f"state.dir: {path}"
    if not os.path.lexists(path):
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StateDirError(f"state.dir: cannot create {path} ({_why(e)})") from None
    fd = _open_dir(path)
    try:
        st = os.fstat(fd)
        vfs = os.fstatvfs(fd)
        if vfs.f_flag & os.ST_RDONLY:
            raise StateDirError(f"{where} is not writable (Read-only file system)")
        mode = stat.S_IMODE(st.st_mode)
        if mode != mode & 0o700:
            try:
                os.fchmod(fd, mode & 0o700)
            except OSError as e:
                hint = _owner_hint(st)
                raise StateDirError(
                    f"{where} is mode {mode:04o} and cannot be made 0700 ({_why(e)}{hint})"
                ) from None
        _tighten_files(fd, st.st_uid, where, st)
        _probe(fd, where, st)
        free = vfs.f_bavail * vfs.f_frsize
        if free < min_free_bytes:
            raise StateDirError(
                f"{where} has only {_size(free)} free (needs at least {_size(min_free_bytes)})"
            )
    finally:
        os.close(fd)


class StateLock:
    """``flock`` on ``<dir>/lock`` for as long as the daemon runs; a second one is refused.

    Use as a context manager or with `acquire()` / `release()`. The file descriptor is
    close-on-exec; a forked child that does not exec would keep the lock alive, so the daemon's
    children must exec (the self-test child does).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StateLock:
        """Take the lock and write our pid into it; leftover temp files are removed then."""
        if self._fd is not None:
            return self
        where = f"state.dir: {self.state_dir}"
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags | os.O_NOCTTY, 0o600)
        except OSError as e:
            raise StateDirError(f"{where}: cannot open the lock file ({_why(e)})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateDirError(f"{where}: {self.path} is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StateDirError(
                    f"{where} is in use by another seqcast-edge (pid {_holder(fd)}); "
                    "give each daemon its own state.dir"
                ) from None
            except OSError as e:
                raise StateDirError(f"{where}: cannot lock {self.path} ({_why(e)})") from None
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError as e:
                raise StateDirError(f"{where}: cannot write {self.path} ({_why(e)})") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        remove_stale_temps(self.state_dir)
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The pid the lock holder wrote (it may be between truncating and writing: retry a bit)."""
    for _ in range(10):
        with contextlib.suppress(OSError):
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            if text.isdigit():
                return text
        time.sleep(0.02)
    return "unknown"


def remove_stale_temps(state_dir: Path) -> int:
    """Remove temp and probe files a crashed run left (call only while holding the lock)."""
    removed = 0
    try:
        dir_fd = os.open(state_dir, _DIR_FLAGS)
    except OSError:
        return 0
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                if _STALE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=dir_fd)
                        removed += 1
    finally:
        os.close(dir_fd)
    return removed


def atomic_write(path: Path, write: Callable[[BinaryIO], None], mode: int = 0o600) -> None:
    """Write via `write(fileobj)` to a new temp file (random name, `mode`, never through a
    symlink), fsync it, rename it over `path` and fsync the directory. On any error the temp
    file is removed and the error re-raised; `path` is then unchanged."""
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, _NEW_FILE, mode)
            break
        except FileExistsError:  # a name taken (or planted): draw another
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
