"""The daemon: wires config, bundle, pipeline and MQTT together; signals, sd_notify, status.

Threads: paho's network thread fills a bounded inbox; the main thread takes everything that
arrived while it was busy as one batch, runs it, and publishes the forecasts. Signals only set
flags that the main loop acts on between batches.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcast.edge.config import ConfigError, EdgeConfig, MqttConfig, TopicTemplate, read_password
from seqcast.edge.counters import Counters
from seqcast.edge.model.bundle import BundleError, read_bundle
from seqcast.edge.model.runtime import LoadedModel, load_model
from seqcast.edge.mqtt import InboundMessage, MqttLink
from seqcast.edge.mqtt.diagnose import reason_of, tls_context
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.service.outbox import load_outbox, save_outbox
from seqcast.edge.service.sdnotify import Notifier, watchdog_interval_s
from seqcast.edge.service.snapshot import SnapshotError, load_snapshot, save_snapshot

log = logging.getLogger(__name__)

MAX_BATCH = 4096
READY_TIMEOUT_S = 60.0  # READY=1 even without a broker after this long (then keep retrying)
WATCH_INTERVAL_S = 2.0
DRAIN_ACKS_S = 5.0  # at shutdown, how long to wait for the broker to take pending forecasts
SNAPSHOT_FILE = "streams.npz"
OUTBOX_FILE = "outbox.jsonl"


def check_tls(cfg: MqttConfig) -> None:
    """Load the CA, certificate and key now, so a bad file fails at start in one line."""
    if not cfg.tls.enabled:
        return
    try:
        tls_context(cfg.tls)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise ConfigError(
            f"mqtt.tls: cannot load the CA/certificate/key files: {reason_of(e)}"
        ) from None


def load(cfg: EdgeConfig) -> LoadedModel:
    """Read, verify and self-test the configured bundle (raises one-line user errors)."""
    bundle = read_bundle(cfg.model.path)
    model, _ = load_model(bundle, cfg.model.backend, cfg.model.num_threads)
    return model


@dataclass
class _FileStamp:
    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> _FileStamp | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return cls(st.st_mtime_ns, st.st_size, st.st_ino)


class Daemon:
    def __init__(
        self, cfg: EdgeConfig, notifier: Notifier | None = None, environ: Any = os.environ
    ):
        self.cfg = cfg
        self.notifier = notifier or Notifier.from_env(environ)
        self.watchdog_s = watchdog_interval_s(environ)
        self.counters = Counters()
        self.pipeline = Pipeline(
            load(cfg),
            mode=cfg.model.mode,
            input=cfg.input,
            streams=cfg.streams,
            output_topic=cfg.output.topic,
            counters=self.counters,
        )
        check_tls(cfg.mqtt)
        self.link = MqttLink(
            cfg.mqtt,
            TopicTemplate(cfg.input.topic),
            status_topic=cfg.status_topic,
            password=read_password(cfg.mqtt, environ),
            counters=self.counters,
            inbox_size=cfg.state.queue_size,
        )
        self.counters.gauge("queue", self.link.inbox.qsize)
        self._stop = False
        self._reload = False
        self._stamp = _FileStamp.of(Path(cfg.model.path))
        self.state_dir = Path(cfg.state.dir)
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"state.dir: cannot create {self.state_dir} ({e.strerror})") from None
        self._restore_snapshot()

    # -- signals --------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self._stop = True

    def request_reload(self, *_: Any) -> None:
        self._reload = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> int:
        self.link.start()
        self._wait_ready()
        if self._stop:  # asked to stop before we ever served
            return self._shutdown()
        p = self.pipeline
        log.info(
            "seqcast-edge serving %s (%s) in %s mode on backend %s; broker %s:%d; "
            "input %s -> output %s",
            p.model_id,
            self.cfg.model.path,
            p.mode,
            p.model.backend,
            self.cfg.mqtt.host,
            self.cfg.mqtt.port,
            self.cfg.input.topic,
            self.cfg.output.topic,
        )
        self.notifier.ready()
        self.notifier.status(f"serving {p.model_id} ({p.mode} mode)")
        self._republish_outbox()
        gc.collect()
        gc.freeze()  # what start-up left is never garbage: keep it out of every later collection
        next_status = next_watchdog = next_watch = time.monotonic()
        interval = self.cfg.state.snapshot_interval_s
        next_snapshot = time.monotonic() + interval if interval > 0 else float("inf")
        while not self._stop:
            self._process(self._next_batch(timeout=0.5))
            now = time.monotonic()
            if self.watchdog_s and now >= next_watchdog:
                self.notifier.watchdog()
                next_watchdog = now + self.watchdog_s
            if now >= next_status:
                self.link.publish_status("online")
                next_status = now + self.cfg.status.interval_s
            if self.cfg.model.watch and now >= next_watch:
                next_watch = now + WATCH_INTERVAL_S
                self._check_file()
            if now >= next_snapshot:
                next_snapshot = now + interval
                self.checkpoint()
            if self._reload:
                self._reload = False
                self.reload()
        return self._shutdown()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._stop and time.monotonic() < deadline:
            if self.link.wait_subscribed(0.5):
                return
            if self.watchdog_s:
                self.notifier.watchdog()
        if not self._stop:
            log.warning(
                "not subscribed after %.0f s (%s); serving anyway and retrying",
                READY_TIMEOUT_S,
                self.link.last_error or "broker unreachable",
            )

    def _next_batch(self, timeout: float) -> list[InboundMessage]:
        return self.link.next_batch(timeout, MAX_BATCH)

    def _process(self, batch: list[InboundMessage]) -> None:
        if not batch:
            return
        forecasts = self.pipeline.handle(batch)
        self.link.publish_batch(forecasts, batch, self.cfg.output.qos, self.cfg.output.retain)

    def _shutdown(self) -> int:
        log.info("stopping: no new input, finishing %d queued messages", self.counters["queue"])
        self.notifier.stopping()
        self.link.stop_input()
        while batch := self._next_batch(timeout=0.2):
            self._process(batch)
        deadline = time.monotonic() + DRAIN_ACKS_S
        while self.link.connected and self.link.pending_forecasts() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.checkpoint()
        self.link.publish_status("offline")
        self.link.stop()
        c = self.counters
        log.info(
            "stopped: %d samples in, %d forecasts out, %d bad payloads, %d streams",
            c["samples"],
            c["forecasts"],
            c["bad_payloads"],
            c["streams"],
        )
        return 0

    # -- state across restarts ------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Snapshot the stream table and save unacknowledged forecasts (both atomic, mode 0600)."""
        p = self.pipeline
        t0 = time.monotonic()
        try:
            n = save_snapshot(self.state_dir / SNAPSHOT_FILE, p.table, p.bundle.sha256, p.mode)
            kept, dropped = save_outbox(
                self.state_dir / OUTBOX_FILE,
                self.link.pending_forecasts(),
                self.cfg.state.outbox_max_bytes,
            )
        except OSError as e:
            log.error("cannot write state to %s: %s", self.state_dir, e)
            return
        self.counters.add("state_outbox_dropped", dropped)
        log.debug(
            "checkpoint: %d streams, %d pending forecasts in %.0f ms",
            n,
            kept,
            1000 * (time.monotonic() - t0),
        )

    def _restore_snapshot(self) -> None:
        path = self.state_dir / SNAPSHOT_FILE
        if not path.exists():
            return
        p = self.pipeline
        try:
            n, age = load_snapshot(path, p.table, p.bundle.sha256, p.mode)
        except SnapshotError as e:
            log.warning("snapshot ignored, streams start cold: %s", e)
            return
        log.info("restored %d streams from snapshot (%.0f s old)", n, age)

    def _republish_outbox(self) -> None:
        items = load_outbox(self.state_dir / OUTBOX_FILE)
        for item in items:
            self.link.publish_batch([(item.topic, item.payload)], [], item.qos, item.retain)
        if items:
            log.info("republished %d forecasts saved by the previous run", len(items))

    # -- model swap -----------------------------------------------------------------------------
    def _check_file(self) -> None:
        stamp = _FileStamp.of(Path(self.cfg.model.path))
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            log.info("bundle file %s changed; reloading", self.cfg.model.path)
            self.reload()

    def reload(self) -> bool:
        """Load, verify and self-test the bundle again; keep serving the old one on failure."""
        self.notifier.reloading()
        try:
            model = load(self.cfg)
        except (BundleError, RuntimeError, ValueError, OSError) as e:
            log.error("reload failed, still serving %s: %s", self.pipeline.model_id, e)
            self.notifier.ready()
            return False
        old = self.pipeline.model_id
        try:
            kept = self.pipeline.swap(model)
        except ValueError as e:
            log.error("reload failed, still serving %s: %s", old, e)
            self.notifier.ready()
            return False
        log.info(
            "now serving %s (was %s); streams %s",
            self.pipeline.model_id,
            old,
            "kept" if kept else "restart warm-up (features, window or state shape changed)",
        )
        self.notifier.ready()
        self.notifier.status(f"serving {self.pipeline.model_id} ({self.pipeline.mode} mode)")
        return True
