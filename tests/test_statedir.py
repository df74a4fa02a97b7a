"""edge/service/statedir.py on real file systems: modes, symlinks, read-only and full, the lock.

The read-only and full cases mount a small tmpfs (root, and a kernel that lets us mount); where
that is not possible they skip and say why. Locks are taken by real processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqcast.edge.config import ConfigError
from seqcast.edge.service.statedir import (
    LOCK_FILE,
    MIN_FREE_BYTES,
    StateDirError,
    StateLock,
    atomic_write,
    prepare_state_dir,
)

ROOT = os.geteuid() == 0
NOBODY = 65534


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def one_line(exc: pytest.ExceptionInfo[StateDirError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, ConfigError)
    return text


@contextlib.contextmanager
def tmpfs(where: Path, *options: str) -> Iterator[Path]:
    """A tmpfs mounted at `where` for the test; skips when mounting is not permitted here."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if not (ROOT and mount and umount):
        pytest.skip("needs root and mount(8) to make a small tmpfs (read-only and full cases)")
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("mode=0700", *options))
    proc = subprocess.run(
        [mount, "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run([umount, "-l", str(where)], check=True)


def remount(where: Path, option: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{option}", str(where)], check=True)


def fill(directory: Path) -> None:
    """Write until the file system says it is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


# -- creating and tightening ---------------------------------------------------------------------


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    state = tmp_path / "var" / "lib" / "seqcast"
    prepare_state_dir(state)
    assert state.is_dir() and mode_of(state) == 0o700
    assert list(state.iterdir()) == []  # the probe file is gone


def test_an_open_directory_and_its_files_are_made_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    (state / "streams.npz").write_bytes(b"old")
    (state / "streams.npz").chmod(0o644)
    (state / "readonly").write_bytes(b"r")
    (state / "readonly").chmod(0o444)
    (state / "sub").mkdir(mode=0o755)
    (state / "sub").chmod(0o755)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not ours")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)
    prepare_state_dir(state)
    assert mode_of(state) == 0o700
    assert mode_of(state / "streams.npz") == 0o600
    assert mode_of(state / "readonly") == 0o400  # only group and other bits go
    assert mode_of(state / "sub") == 0o755  # subdirectories are left alone
    assert mode_of(outside) == 0o644 and (state / "link").is_symlink()  # never followed
    assert (state / "streams.npz").read_bytes() == b"old"


@pytest.mark.skipif(not ROOT, reason="chown to another user needs root")
def test_files_of_another_owner_are_left_alone(tmp_path: Path) -> None:
    """A root-owned bundle the daemon reads through its group must stay readable to it."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    bundle = state / "model.seqcast"
    bundle.write_bytes(b"zip")
    os.chown(bundle, NOBODY, NOBODY)
    bundle.chmod(0o640)
    prepare_state_dir(state)
    assert mode_of(bundle) == 0o640


def test_a_state_dir_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    real.chmod(0o755)
    link = tmp_path / "state"
    link.symlink_to(real)
    with pytest.raises(StateDirError) as exc:
        prepare_state_dir(link)
    assert one_line(exc) == (
        f"state.dir: {link} is a symlink (to {real}); set state.dir to the directory itself"
    )
    assert mode_of(real) == 0o755 and list(real.iterdir()) == []
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(StateDirError, match="is a symlink"):
        prepare_state_dir(dangling)
    assert not (tmp_path / "nowhere").exists()  # not created through the link


def test_a_file_where_the_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "state").write_bytes(b"")
    with pytest.raises(StateDirError) as exc:
        prepare_state_dir(tmp_path / "state")
    assert one_line(exc) == f"state.dir: {tmp_path / 'state'} is not a directory"
    with pytest.raises(StateDirError) as exc:
        prepare_state_dir(tmp_path / "state" / "sub")
    assert one_line(exc).startswith(f"state.dir: cannot create {tmp_path / 'state' / 'sub'} (")


# -- not writable, full --------------------------------------------------------------------------


@contextlib.contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block with the effective uid and gid of nobody (root can return from it)."""
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_directory_the_daemon_cannot_write_is_one_line() -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as top:
        os.chmod(top, 0o755)  # reachable for nobody
        state = Path(top) / "state"
        state.mkdir(mode=0o700)
        if ROOT:
            os.chown(state, NOBODY, NOBODY)
        state.chmod(0o500)
        user = as_nobody() if ROOT else contextlib.nullcontext()
        with user, pytest.raises(StateDirError) as exc:
            prepare_state_dir(state)
        assert one_line(exc) == f"state.dir: {state} is not writable (Permission denied)"
        if not ROOT:
            return
        other = Path(top) / "root-owned"  # root's 0755 directory: the daemon cannot tighten it
        other.mkdir()
        other.chmod(0o755)
        with as_nobody(), pytest.raises(StateDirError) as exc:
            prepare_state_dir(other)
        assert one_line(exc) == (
            f"state.dir: {other} is mode 0755 and cannot be made 0700 "
            f"(Operation not permitted; owned by uid 0, running as uid {NOBODY})"
        )


def test_a_read_only_file_system_is_one_line_and_nothing_changes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "size=256k") as mnt:
        state = mnt / "state"
        state.mkdir(mode=0o755)
        state.chmod(0o755)
        (state / "streams.npz").write_bytes(b"old snapshot")
        (state / "streams.npz").chmod(0o644)
        remount(mnt, "ro")
        with pytest.raises(StateDirError) as exc:
            prepare_state_dir(state)
        assert one_line(exc) == f"state.dir: {state} is not writable (Read-only file system)"
        assert mode_of(state / "streams.npz") == 0o644
        with pytest.raises(StateDirError) as exc:
            prepare_state_dir(mnt / "missing")
        assert (
            one_line(exc) == f"state.dir: cannot create {mnt / 'missing'} (Read-only file system)"
        )


def test_too_little_free_space_and_a_full_file_system(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "size=256k") as mnt:
        state = mnt / "state"
        with pytest.raises(StateDirError) as exc:
            prepare_state_dir(state)  # the default needs 16 MiB
        assert re.fullmatch(
            rf"state\.dir: {re.escape(str(state))} has only \d+ KiB free "
            r"\(needs at least 16 MiB\)",
            one_line(exc),
        ), str(exc.value)
        assert MIN_FREE_BYTES == 16 << 20
        prepare_state_dir(state, min_free_bytes=64 << 10)  # enough for this test's needs
        fill(state)
        with pytest.raises(StateDirError) as exc:
            prepare_state_dir(state, min_free_bytes=0)
        assert one_line(exc) == f"state.dir: {state} is full (No space left on device)"
        assert sorted(p.name for p in state.iterdir()) == ["filler"]  # no probe left behind


# -- atomic_write --------------------------------------------------------------------------------


def test_atomic_write_replaces_the_file_privately(tmp_path: Path) -> None:
    target = tmp_path / "outbox.jsonl"
    atomic_write(target, lambda f: f.write(b"one\n"))
    atomic_write(target, lambda f: f.writelines([b"two\n", b"three\n"]))
    assert target.read_bytes() == b"two\nthree\n" and mode_of(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["outbox.jsonl"]


def test_atomic_write_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = state / "streams.npz"
    # the temp name the old code used (pid-based, predictable) and the target itself
    (state / f".streams.npz.{os.getpid()}.tmp").symlink_to(victim)
    atomic_write(target, lambda f: f.write(b"snapshot 1"))
    assert victim.read_bytes() == b"untouched" and target.read_bytes() == b"snapshot 1"
    target.unlink()
    target.symlink_to(victim)
    atomic_write(target, lambda f: f.write(b"snapshot 2"))
    assert not target.is_symlink() and target.read_bytes() == b"snapshot 2"
    assert victim.read_bytes() == b"untouched"


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "streams.npz"
    atomic_write(target, lambda f: f.write(b"old"))

    def broken(f: object) -> None:
        raise ValueError("encoder bug")

    with pytest.raises(ValueError, match="encoder bug"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_atomic_write_on_a_full_disk_raises_and_keeps_the_old_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "size=256k") as mnt:
        target = mnt / "streams.npz"
        atomic_write(target, lambda f: f.write(b"old snapshot"))
        fill(mnt)
        with pytest.raises(OSError) as exc:
            atomic_write(target, lambda f: f.write(b"x" * (64 << 10)))
        assert exc.value.errno == errno.ENOSPC
        assert target.read_bytes() == b"old snapshot"
        assert sorted(p.name for p in mnt.iterdir()) == ["filler", "streams.npz"]


# -- the lock ------------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from seqcast.edge.service.statedir import StateLock
    lock = StateLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@contextlib.contextmanager
def holder(state: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
        proc.wait(timeout=10)


def test_a_second_daemon_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prepare_state_dir(state)
    with holder(state) as other:
        with pytest.raises(StateDirError) as exc:
            StateLock(state).acquire()
        assert one_line(exc) == (
            f"state.dir: {state} is in use by another seqcast-edge (pid {other.pid}); "
            "give each daemon its own state.dir"
        )
        prepare_state_dir(state)  # `check` beside a running daemon: no lock, no complaint
    with StateLock(state) as lock:  # the holder is gone: ours now
        assert lock.locked and (state / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        assert mode_of(state / LOCK_FILE) == 0o600
        with pytest.raises(StateDirError, match="in use by another seqcast-edge"):
            StateLock(state).acquire()  # even from the same process
    assert not lock.locked


def test_a_killed_daemon_does_not_leave_its_lock_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prepare_state_dir(state)
    with holder(state) as other:
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
    lock = StateLock(state).acquire()
    lock.release()
    lock.release()  # twice is harmless


def test_taking_the_lock_removes_what_a_crash_left(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prepare_state_dir(state)
    stale = [
        ".streams.npz.4242.tmp",
        ".outbox.jsonl.0123456789abcdef.tmp",
        ".probe-0123456789abcdef",
    ]
    for name in stale:
        (state / name).write_bytes(b"half")
    (state / ".keep.me").write_bytes(b"")
    with StateLock(state):
        assert sorted(p.name for p in state.iterdir()) == [".keep.me", LOCK_FILE]


def test_a_planted_lock_symlink_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    state = tmp_path / "state"
    prepare_state_dir(state)
    (state / LOCK_FILE).symlink_to(victim)
    with pytest.raises(StateDirError) as exc:
        StateLock(state).acquire()
    assert one_line(exc).startswith(f"state.dir: {state}: cannot open the lock file (")
    assert victim.read_bytes() == b"untouched"
