"""The deploy slots in the state directory: which signed release serves, and which served before.

`<state.dir>/deploy/` holds `current.seqcast` (+ `.minisig`), `previous.seqcast` (+ `.minisig`)
and `state.json`, the source of truth: the current and previous releases (version, channel,
sha256 of the bundle), the phase (`probation` until the release has proved itself, then
`committed`), how many times the daemon started while it was on probation, and the releases
that were rolled back (so a retained copy on the broker is not installed again).

Every write is atomic and fsynced (`statedir.atomic_write`, renames in one directory). An
install renames `current` to `previous`, renames the checked `incoming.seqcast` to `current`,
then writes `state.json`; a crash between two steps leaves a `current.seqcast` whose sha256 is
not the one `state.json` names while `previous.seqcast` still is, and `Slots.read` undoes the
half-done rotation (the new release is still retained on the broker and comes again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal

from seqcast.edge.config import ConfigError
from seqcast.edge.service.statedir import atomic_write, remove_stale_temps

DEPLOY_DIR = "deploy"
CURRENT = "current.seqcast"
PREVIOUS = "previous.seqcast"
INCOMING = "incoming.seqcast"
FAILED = "failed.seqcast"  # the last rolled-back bundle, kept for a post-mortem
SIG = ".minisig"
STATE_FILE = "state.json"
KEEP_REFUSED = 16  # rolled-back releases remembered

Phase = Literal["probation", "committed"]


def _write(path: Path, data: bytes) -> None:
    def write(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(path, write)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Release:
    """A bundle a slot holds: version 0 and channel "" for a plain `[model] path` bundle."""

    version: int
    channel: str
    sha256: str


@dataclass(frozen=True)
class SlotState:
    current: Release
    phase: Phase
    starts: int  # daemon starts since the release was installed, while on probation
    previous: Release | None = None
    refused: tuple[Release, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "refused": [asdict(r) for r in self.refused]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SlotState:
        prev = d.get("previous")
        phase = d["phase"]
        if phase not in ("probation", "committed"):
            raise ValueError(f"unknown phase {phase!r}")
        return cls(
            current=Release(**d["current"]),
            phase=phase,
            starts=int(d["starts"]),
            previous=Release(**prev) if prev else None,
            refused=tuple(Release(**r) for r in d.get("refused", ())),
        )


class Slots:
    """The slot files under `<state_dir>/deploy` (created 0700 on first install)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / DEPLOY_DIR
        self.current = self.dir / CURRENT
        self.previous = self.dir / PREVIOUS
        self.incoming = self.dir / INCOMING
        self.state_file = self.dir / STATE_FILE

    # -- reading ----------------------------------------------------------------------------------
    def read(self) -> SlotState | None:
        """The installed state, None when nothing was ever installed; a half-done install is
        undone first. A `state.json` that cannot be read is a ConfigError naming it."""
        try:
            raw = self.state_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"{self.state_file}: cannot read ({e.strerror})") from None
        try:
            state = SlotState.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{self.state_file}: not a deploy state ({e}); remove {self.dir} to serve "
                "[model] path again"
            ) from None
        remove_stale_temps(self.dir)
        with contextlib.suppress(FileNotFoundError):
            self.incoming.unlink()
        if self._sha(self.current) == state.current.sha256:
            return state
        # an install stopped half way: undo it
        previous = self._sha(self.previous)
        if previous == state.current.sha256:  # stopped inside the rotation
            self._rename(self.previous, self.current)
        elif state.previous is not None and previous == state.previous.sha256:
            # a release on probation was being replaced: the last good one serves
            self._rename(self.previous, self.current)
            state = SlotState(state.previous, "committed", 0, None, state.refused)
            self.write_state(state)
        else:
            raise ConfigError(
                f"{self.current}: missing or not the bundle {self.state_file} names; "
                f"remove {self.dir} to serve [model] path again"
            )
        return state

    @staticmethod
    def _sha(path: Path) -> str | None:
        try:
            return sha256_of(path.read_bytes())
        except OSError:
            return None

    # -- writing ----------------------------------------------------------------------------------
    def write_state(self, state: SlotState) -> None:
        _write(self.state_file, json.dumps(state.to_json(), indent=1).encode())

    def stage(self, bundle: bytes) -> Path:
        """Write a verified release's bundle to `incoming.seqcast` (to be loaded and tested)."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        _write(self.incoming, bundle)
        return self.incoming

    def discard_incoming(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.incoming.unlink()

    def install(
        self,
        release: Release,
        minisig: bytes,
        state: SlotState | None,
        serving: tuple[bytes, Release] | None,
    ) -> SlotState:
        """Make the staged bundle `current` (on probation) and what served `previous`.

        `serving`: the bundle bytes and release of a plain `[model] path` bundle when no slot
        was installed yet, copied to `previous` so a rollback has something to restore. A
        release still on probation never becomes `previous`: a newer one replaces it and
        `previous` stays the last one that proved itself."""
        previous: Release | None
        if state is not None and state.phase == "probation":
            previous = state.previous
        elif state is not None and self.current.exists():
            self._rename(self.current, self.previous)
            self._move_sig(self.current, self.previous)
            previous = state.current
        elif serving is not None:
            _write(self.previous, serving[0])
            self._drop_sig(self.previous)
            previous = serving[1]
        else:
            previous = None
        self._rename(self.incoming, self.current)
        _write(self._sig(self.current), minisig)
        refused = state.refused if state is not None else ()
        new = SlotState(release, "probation", 1, previous, refused)
        self.write_state(new)
        return new

    def note_start(self, state: SlotState) -> SlotState:
        new = replace(state, starts=state.starts + 1)
        self.write_state(new)
        return new

    def commit(self, state: SlotState) -> SlotState:
        new = replace(state, phase="committed", starts=0)
        self.write_state(new)
        return new

    def roll_back(self, state: SlotState) -> SlotState:
        """Restore `previous` as `current` (committed); the failed release is remembered (and
        its bundle kept as `failed.seqcast`). Raises FileNotFoundError without a previous."""
        if state.previous is None or not self.previous.exists():
            raise FileNotFoundError(f"{self.previous}: no previous release to restore")
        self._rename(self.current, self.dir / FAILED)
        self._drop_sig(self.current)
        self._rename(self.previous, self.current)
        self._move_sig(self.previous, self.current)
        refused = (*state.refused, state.current)[-KEEP_REFUSED:]
        new = SlotState(state.previous, "committed", 0, None, refused)
        self.write_state(new)
        return new

    # -- files ------------------------------------------------------------------------------------
    @staticmethod
    def _sig(path: Path) -> Path:
        return path.with_name(path.name + SIG)

    def _move_sig(self, src: Path, dst: Path) -> None:
        if self._sig(src).exists():
            self._rename(self._sig(src), self._sig(dst))
        else:
            self._drop_sig(dst)

    def _drop_sig(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._sig(path).unlink()

    def _rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
