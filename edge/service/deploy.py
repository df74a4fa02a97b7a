"""Signed releases over MQTT, on the device: verify, install in a slot, probation, rollback.

The MQTT link hands release payloads (`seqcast-deploy push`: the `.minisig`, then the bundle) to
the main thread apart from sensor data; the daemon calls `Deployer.poll` between batches:

1. the signature is checked over the raw bytes before anything opens the zip (`unsigned`,
   `malformed`, `bad_signature`, `unknown_key`); a release already installed, or already rolled
   back, is a no-op (a retained message comes again on every subscribe);
2. `verifying` is published, then channel (`wrong_channel`) and version (`downgrade`,
   `same_version`, unless `allow_downgrade`; a plain `[model] path` bundle is version 0);
3. the bundle is written to `incoming.seqcast`, loaded and self-tested (`bad_bundle`), made
   `current` (what served becomes `previous`) and swapped in between batches: `probation`;
4. after `probation_batches` batches with forecasts *and* `probation_s` seconds with only finite
   outputs it is `committed`; a non-finite output (a stream reset by the engine, or a forecast
   that cannot be encoded) rolls back to `previous`, which is loaded and serves again:
   `rolled_back`.

A backend error raises out of the data path and ends the process; systemd starts it again and
each start on probation is counted in `state.json`: beyond `crash_loop_starts`, `previous` is
restored before anything loads (`rolled_back`, reason `crash_loop`). Every step is one retained
JSON event on `seqcast/{client_id}/deploy`, one counter and one log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import minisign

from seqcast.edge.config import EdgeConfig
from seqcast.edge.counters import Counters
from seqcast.edge.model.runtime import LoadedModel
from seqcast.edge.model.signature import (
    SignatureError,
    SignedRelease,
    load_public_keys,
    split_delivery,
    verify_release,
)
from seqcast.edge.ratelimit import RateLimitedLog
from seqcast.edge.service.slots import Release, Slots, SlotState, sha256_of

log = logging.getLogger(__name__)

EVENTS = ("verifying", "probation", "committed", "rolled_back", "rejected", "running")
NONFINITE = ("streams_resets_nonfinite", "encode_errors")  # the data path's non-finite outputs


class Rejected(Exception):
    """A release not installed; `reason` names the `deploy_rejected_<reason>` counter."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.version: int | None = None  # once the signature told it
        super().__init__(detail)


@dataclass
class Host:
    """What the deployer needs from the daemon."""

    load: Callable[[Path], LoadedModel]  # read, verify and self-test a bundle file
    swap: Callable[[LoadedModel], bool]  # serve it from the next batch on (False: refused)
    model_id: Callable[[], str]
    publish: Callable[[str, bytes], None]  # retained, QoS 1


@dataclass
class _Probation:
    since: float  # monotonic
    nonfinite: int  # the NONFINITE counters when it began
    forecasts: int  # the forecasts counter after the last batch that made some
    batches: int = 0  # batches that made forecasts


class Deployer:
    def __init__(self, cfg: EdgeConfig, state_dir: Path, counters: Counters) -> None:
        self.cfg = cfg
        self.d = cfg.deploy
        self.counters = counters
        self.slots = Slots(state_dir)
        self.keys: list[minisign.PublicKey] = (
            load_public_keys(self.d.public_key) if self.d.enabled else []
        )
        self.state: SlotState | None = None
        self.host: Host | None = None
        self._probation: _Probation | None = None
        self._pending: list[dict[str, Any]] = []  # events decided before the link existed
        self._ratelog = RateLimitedLog(log)

    # -- start ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """At start, before a model loads: read the installed state (`state` None: nothing
        installed, `[model] path` serves); count a start on probation, and after too many
        restore `previous`."""
        state = self.state = self.slots.read()
        if state is not None and state.phase == "probation":
            state = self.state = self.slots.note_start(state)
            if state.starts > self.d.crash_loop_starts and state.previous is not None:
                failed = state.current
                self.state = self.slots.roll_back(state)
                why = f"started {state.starts - 1} times on probation (deploy.crash_loop_starts)"
                self._rolled_back(failed, "crash_loop", why)

    def started(self, host: Host) -> None:
        """The daemon serves and its link is up: publish what start decided, or `running`."""
        self.host = host
        pending, self._pending = self._pending, []
        for event in pending:
            self._send(event)
        if not pending:
            self._event("running", self.installed.version, None, None)
        if self.state is not None and self.state.phase == "probation":
            self._begin_probation()

    @property
    def installed(self) -> Release:
        return self.state.current if self.state is not None else Release(0, "", "")

    # -- the main loop ----------------------------------------------------------------------------
    def poll(self, payloads: list[bytes]) -> None:
        """Between batches: probation, then the releases that arrived."""
        if self._probation is not None:
            forecasts = self.counters["forecasts"]
            if forecasts > self._probation.forecasts:  # a batch the release forecast for
                self._probation.batches += 1
                self._probation.forecasts = forecasts
            self._check_probation()
        for payload in payloads:
            try:
                self._deliver(payload)
            except Rejected as e:
                self.counters.inc(f"deploy_rejected_{e.reason}")
                self._ratelog(f"reject-{e.reason}", "release rejected (%s): %s", e.reason, e)
                self._event("rejected", e.version, None, e.reason)

    def _deliver(self, payload: bytes) -> None:
        if not payload:  # the retained release was cleared (an empty retained message)
            log.info("the release on %s was cleared; nothing to install", self.cfg.deploy_topic)
            return
        try:
            minisig, bundle = split_delivery(payload)
            release = verify_release(bundle, minisig, self.keys)
        except SignatureError as e:
            raise Rejected(e.reason, str(e)) from None
        sha = sha256_of(bundle)
        known = Release(release.version, release.channel, sha)
        if known == self.installed or (self.state and known in self.state.refused):
            self.counters.inc("deploy_unchanged")
            what = "installed" if known == self.installed else "rolled back before"
            msg = "release %s already %s"
            self._ratelog("unchanged", msg, _name(release), what, level=logging.INFO)
            return
        self.counters.inc("deploy_verified")
        log.info("release %s: signature by key %s checks", _name(release), release.key_id)
        self._event("verifying", release.version, release.channel, None)
        try:
            self._check(release, sha)
            self._install(release, minisig, bundle, known)
        except Rejected as e:
            e.version = release.version
            raise

    def _check(self, r: SignedRelease, sha: str) -> None:
        if r.channel != self.d.channel:
            raise Rejected("wrong_channel", f"{_name(r)} is for channel {r.channel!r}")
        have = self.installed.version
        if self.d.allow_downgrade:
            return
        if r.version < have:
            raise Rejected("downgrade", f"{_name(r)} is older than installed version {have}")
        if r.version == have:
            raise Rejected("same_version", f"{_name(r)} has the installed version, other bytes")

    def _install(self, r: SignedRelease, minisig: bytes, bundle: bytes, new: Release) -> None:
        assert self.host is not None
        try:
            staged = self.slots.stage(bundle)
        except OSError as e:
            raise Rejected("write_failed", f"{self.slots.incoming}: {e.strerror or e}") from None
        try:
            model = self.host.load(staged)
        except (RuntimeError, ValueError, OSError) as e:  # bundle, backend, self-test errors
            self.slots.discard_incoming()
            raise Rejected("bad_bundle", f"{_name(r)}: {e}") from None
        serving = None
        if self.state is None:  # a plain [model] path bundle serves: keep a copy to roll back to
            data = Path(self.cfg.model.path).read_bytes()
            serving = (data, Release(0, "", sha256_of(data)))
        try:
            self.state = self.slots.install(new, minisig, self.state, serving)
        except OSError as e:
            self.slots.discard_incoming()
            raise Rejected("write_failed", f"{self.slots.dir}: {e.strerror or e}") from None
        if not self.host.swap(model):
            self._roll_back("swap_failed", "the pipeline refused the new model")
            return
        self.counters.inc("deploy_installed")
        log.info("release %s installed on probation", _name(r))
        self._event("probation", r.version, r.channel, None)
        self._begin_probation()

    # -- probation --------------------------------------------------------------------------------
    def _nonfinite(self) -> int:
        return sum(self.counters[n] for n in NONFINITE)

    def _begin_probation(self) -> None:
        now, forecasts = time.monotonic(), self.counters["forecasts"]
        self._probation = _Probation(now, self._nonfinite(), forecasts)

    def _check_probation(self) -> None:
        p, state = self._probation, self.state
        assert p is not None and state is not None
        if self._nonfinite() > p.nonfinite:
            self._roll_back("non_finite", "the model gave non-finite outputs on live data")
            return
        elapsed = time.monotonic() - p.since
        if p.batches >= self.d.probation_batches and elapsed >= self.d.probation_s:
            self._probation = None
            self.state = self.slots.commit(state)
            self.counters.inc("deploy_committed")
            v = state.current
            log.info(
                "release version %d (%s) committed after %d batches and %.0f s",
                v.version, v.channel, p.batches, elapsed,
            )  # fmt: skip
            self._event("committed", v.version, v.channel, None)

    def _roll_back(self, reason: str, why: str) -> None:
        assert self.host is not None and self.state is not None
        self._probation = None
        failed = self.state.current
        self.state = self.slots.roll_back(self.state)
        model = self.host.load(self.slots.current)  # it served before: it loads
        self.host.swap(model)
        self._rolled_back(failed, reason, why)

    def _rolled_back(self, failed: Release, reason: str, why: str) -> None:
        self.counters.inc("deploy_rolled_back")
        now = self.installed
        log.error(
            "release version %d (%s) rolled back (%s: %s); version %d serves again",
            failed.version, failed.channel, reason, why, now.version,
        )  # fmt: skip
        self._event("rolled_back", failed.version, failed.channel, reason)

    # -- events -----------------------------------------------------------------------------------
    def _event(
        self, event: str, version: int | None, channel: str | None, reason: str | None
    ) -> None:
        body = {
            "event": event,
            "version": version,
            "channel": channel if channel is not None else self.d.channel,
            "model_id": None,
            "reason": reason,
            "time": round(time.time(), 3),
        }
        if self.host is None:
            self._pending.append(body)
        else:
            self._send(body)

    def _send(self, body: dict[str, Any]) -> None:
        assert self.host is not None
        body["model_id"] = self.host.model_id()  # what serves once the event happened
        self.host.publish(self.cfg.deploy_events_topic, json.dumps(body).encode())


def _name(r: SignedRelease) -> str:
    return f"version {r.version} ({r.channel}, {r.file})"
