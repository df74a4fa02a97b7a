"""The daemon: wires config, bundle, pipeline and MQTT together; signals, sd_notify, status.

Threads: paho's network thread fills the inbox; the main thread takes everything that arrived
while it was busy as one batch, runs it chunk by chunk, journals and publishes each chunk's
forecasts, and registers the batch's inputs for acknowledgement once the journal is on disk.
When too many forecasts await the broker's acknowledgement it stops taking input until they
drain (backpressure), instead of dropping anything. Signals only set flags that the main loop
acts on between batches.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqcast.edge.config import EdgeConfig, TopicTemplate, read_password
from seqcast.edge.counters import Counters
from seqcast.edge.model.bundle import BundleError, read_bundle
from seqcast.edge.model.runtime import LoadedModel, load_model
from seqcast.edge.mqtt import InboundMessage, MqttLink
from seqcast.edge.mqtt.diagnose import check_tls
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.service.clockhold import ClockHold
from seqcast.edge.service.committer import Committer
from seqcast.edge.service.deploy import Deployer, Host
from seqcast.edge.service.filestamp import FileStamp
from seqcast.edge.service.homeassistant import discovery_for
from seqcast.edge.service.replica import start_replica
from seqcast.edge.service.sdnotify import Notifier, watchdog_interval_s
from seqcast.edge.service.state import DurableState
from seqcast.edge.service.statedir import StateLock, prepare_state_dir
from seqcast.edge.service.status import StatusReport

if TYPE_CHECKING:
    from seqcast.edge.service.metrics import MetricsServer

log = logging.getLogger(__name__)

MAX_BATCH = 4096
READY_TIMEOUT_S = 60.0  # READY=1 even without a broker after this long (then keep retrying)
WATCH_INTERVAL_S = 2.0
IDLE_WAIT_S = 0.5  # longest wait for input while idle
DRAIN_ACKS_S = 5.0  # at shutdown, how long to wait for the broker to take pending forecasts


def load(cfg: EdgeConfig, path: Path | None = None) -> LoadedModel:
    """Read, verify and self-test `path` (default: the configured bundle); one-line errors."""
    bundle = read_bundle(cfg.model.path if path is None else path)
    m = cfg.model
    model, _ = load_model(bundle, m.backend, m.num_threads, isolate=m.isolate_selftest)
    return model


class Daemon:
    def __init__(
        self, cfg: EdgeConfig, notifier: Notifier | None = None, environ: Any = os.environ
    ):
        self.cfg = cfg
        self.notifier = notifier or Notifier.from_env(environ)
        self.watchdog_s = watchdog_interval_s(environ)
        self.counters = Counters()
        # the state directory first: a second daemon on it, or a full disk, fails here in one
        # line (exit 2), before a model is loaded or the broker sees this client id
        self.state_dir = Path(cfg.state.dir)
        prepare_state_dir(self.state_dir)
        self._lock = StateLock(self.state_dir).acquire()
        try:
            self._start(cfg, environ)
        except BaseException:
            self._lock.release()
            raise

    def _start(self, cfg: EdgeConfig, environ: Any) -> None:
        # with deployment over MQTT on, an installed release (deploy/current.seqcast) serves
        self.deployer = Deployer(cfg, self.state_dir, self.counters) if cfg.deploy.enabled else None
        if self.deployer is not None:
            self.deployer.prepare()  # a crash loop on probation restores `previous` here
        self.pipeline = Pipeline(
            load(cfg, self.model_path),
            mode=cfg.model.mode,
            input=cfg.input,
            streams=cfg.streams,
            output_topic=cfg.output.topic,
            counters=self.counters,
            quality=cfg.quality,
            output_format=cfg.output.format,
        )
        check_tls(cfg.mqtt)
        i = cfg.input
        self.clock_hold = ClockHold(self.counters, i.clock_synced_file, i.max_future_s)
        d = self.deployer
        self.report = StatusReport(
            self.pipeline, self.clock_hold, lambda: d.installed.version if d else None
        )
        self.link = MqttLink(
            cfg.mqtt,
            TopicTemplate(cfg.input.topic),
            status_topic=cfg.status_topic,
            password=read_password(cfg.mqtt, environ),
            counters=self.counters,
            inbox_size=cfg.state.queue_size,
            max_stream_id_bytes=cfg.input.max_stream_id_bytes,
            topic_cache_size=cfg.streams.max_streams,
            deploy_topic=cfg.deploy_topic if self.deployer is not None else None,
            status_fields=self.report.fields,
            birth_topic=cfg.birth_topic,
        )
        self.discovery = discovery_for(cfg, self.pipeline, self.link, self.counters)
        self.counters.gauge("queue", self.link.inbox.qsize)
        self._stop = self._reload = False
        self._watched = Path(cfg.model.path)  # an installed release is not watched
        self._stamp = FileStamp.of(self._watched)
        self.metrics = self._serve_metrics() if cfg.metrics.listen else None
        st = cfg.state
        replica = (
            start_replica(st.replicate, cfg.mqtt.client_id, st.replicas) if st.replicate else None
        )
        self.state = DurableState(self.state_dir, self.counters, st.outbox_max_bytes, replica)
        try:
            self._republish = self.state.restore(self.pipeline)
        except BaseException:
            self.state.close()
            raise
        # fsyncs the journal off the data path, then lets the inputs be acknowledged
        self.committer: Committer[InboundMessage] = Committer(
            self._acknowledge, self.counters.view("state_"), replica.sync if replica else None
        )
        self._batch_messages = self.counters.histogram("batch_messages")

    def _serve_metrics(self) -> MetricsServer:
        """Before the committer's thread, so a port in use fails in one line; imported only
        when on (prometheus-client takes 0.5 s)."""
        from seqcast.edge.service.metrics import MetricsServer

        return MetricsServer(self.cfg.metrics, self.counters, self.report)

    @property
    def model_path(self) -> Path:
        """The bundle that serves: the installed release's slot, else `[model] path`."""
        d = self.deployer
        if d is not None and d.state is not None:
            return d.slots.current
        return Path(self.cfg.model.path)

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
            "seqcast-edge serving %s (%s) in %s mode on backend %s; %s; broker %s; "
            "input %s -> output %s",
            p.model_id,
            self.model_path,
            p.mode,
            p.model.backend,
            p.alignment(),
            self.link.broker,
            self.cfg.input.topic,
            self.cfg.output.topic,
        )
        self.notifier.ready()
        self.notifier.status(f"serving {p.model_id} ({p.mode} mode)")
        self._republish_saved()
        if self.deployer is not None:
            self.deployer.started(
                Host(
                    lambda path: load(self.cfg, path),
                    self._swap_in,
                    lambda: self.pipeline.model_id,
                    self.link.publish_retained,
                )
            )
        gc.collect()
        gc.freeze()  # what start-up left is never garbage: keep it out of every later collection
        next_status = next_watchdog = next_watch = time.monotonic()
        interval = self.cfg.state.snapshot_interval_s
        next_snapshot = time.monotonic() + interval if interval > 0 else float("inf")
        while not self._stop:
            # wait for input no longer than the next watchdog ping is due
            idle_s = min(IDLE_WAIT_S, max(0.0, next_watchdog - time.monotonic()))
            self._process(self._next_batch(idle_s if self.watchdog_s else IDLE_WAIT_S))
            self._tick()
            if self.discovery is not None:  # Home Assistant: streams seen or evicted, births
                self.discovery.poll()
            if self.deployer is not None:
                self.deployer.poll(self.link.take_deliveries())
            now = time.monotonic()
            if self.watchdog_s and now >= next_watchdog:
                self.notifier.watchdog()
                next_watchdog = now + self.watchdog_s
            if now >= next_status:
                self._publish_status("online")
                next_status = now + self.cfg.status.interval_s
            if self.cfg.model.watch and now >= next_watch and self.model_path == self._watched:
                next_watch = now + WATCH_INTERVAL_S
                self._check_file()
            self.state.note_acked(self.link.acked_tag())
            self._check_clock()
            if now >= next_snapshot or self.state.wants_checkpoint():
                next_snapshot = now + interval if interval > 0 else float("inf")
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
        self._batch_messages.observe(len(batch))
        qos, retain = self.cfg.output.qos, self.cfg.output.retain
        n_features = len(self.pipeline.manifest.features)
        for items, forecasts in self.pipeline.handle_chunks(batch):
            tag = self.state.record(items, n_features)
            self._wait_for_room()
            self.link.publish_batch(forecasts, [], qos, retain, tag)
        # the journal is on disk before any input of the batch can be acknowledged (the
        # committer's fsync); the inputs are acknowledged once every forecast made from them
        # (and before them) is safe
        fd = self.state.flush()
        held = self.pipeline.take_held()
        if held:
            self._hold_for_clock(held)
            kept = {id(m) for m in held}
            batch = [m for m in batch if id(m) not in kept]
        self.committer.submit(fd, batch)

    def _acknowledge(self, inputs: list[InboundMessage]) -> None:
        """The committer's: these inputs' samples are on disk."""
        self.link.publish_batch([], inputs, self.cfg.output.qos, self.cfg.output.retain)

    def _tick(self) -> None:
        """What waiting decided (held runs, silent open intervals: `Pipeline.tick`). The samples
        are in the journal already; which open intervals were stepped is recorded."""
        forecasts, flushed = self.pipeline.tick()
        if flushed:
            self.state.record([], 0, flushed)
        if forecasts:
            self._wait_for_room()
            self.link.publish_batch(forecasts, [], self.cfg.output.qos, self.cfg.output.retain)

    def _hold_for_clock(self, held: list[Any]) -> None:
        """Messages rejected only because the device clock looks wrong stay unacknowledged (the
        broker keeps them) until the clock is trusted; see service/clockhold.py."""
        if self.clock_hold.hold(len(held)):
            self.notifier.status("holding input: the device clock is not trusted")

    def _check_clock(self) -> None:
        if self.clock_hold.released(self.pipeline.clock):
            self.notifier.status(f"serving {self.pipeline.model_id} ({self.pipeline.mode} mode)")
            self.link.ask_redelivery()

    def _wait_for_room(self) -> None:
        """Backpressure: no more input while `output.max_pending` forecasts await the broker."""
        limit = self.cfg.output.max_pending
        if self.link.pending_count() < limit:
            return
        self.counters.add("mqtt_backpressure")
        log.debug("backpressure: %d forecasts await the broker", self.link.pending_count())
        while self.link.pending_count() >= limit // 2 + 1 and not self._stop:
            self.link.wait_for_acks(0.2)
            if self.watchdog_s:
                self.notifier.watchdog()

    def _shutdown(self) -> int:
        log.info("stopping: no new input, finishing %d queued messages", self.counters["queue"])
        self.notifier.stopping()
        self.link.stop_input()
        while batch := self._next_batch(timeout=0.2):
            self._process(batch)
        self.committer.drain()
        deadline = time.monotonic() + DRAIN_ACKS_S
        while self.link.connected and self.link.pending_count() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.checkpoint()
        self.committer.close()
        self.state.close()
        self._publish_status("offline")
        self.link.stop()
        if self.metrics is not None:
            self.metrics.close()
        self._lock.release()
        c = self.counters
        log.info(
            "stopped: %d samples in, %d forecasts out, %d bad payloads, %d streams",
            c["samples"],
            c["forecasts"],
            c["bad_payloads"],
            c["streams"],
        )
        return 0

    def _publish_status(self, state: str) -> None:
        """The status message, and the per-stream live quality on `[quality] topic` (if set)."""
        self.report.log_summary(self.counters, self.cfg.log.summary_interval_s)
        if self.cfg.quality_topic:
            self.link.publish_retained(self.cfg.quality_topic, self.pipeline.quality_message())
        self.link.publish_status(state)

    # -- state across restarts ------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Outbox, snapshot, empty journal (see `state.DurableState.checkpoint`)."""
        self.committer.drain()  # nothing may fsync the journal file while it is replaced
        self.state.checkpoint(self.pipeline, self.link.pending_forecasts())

    def _republish_saved(self) -> None:
        """Forecasts the previous run made but the broker had not acknowledged: the outbox, and
        those recomputed from the journal."""
        items = self.state.outbox()
        for item in items:
            self.link.publish_batch([(item.topic, item.payload)], [], item.qos, item.retain)
        again, self._republish = self._republish, []
        if again:
            qos, retain = self.cfg.output.qos, self.cfg.output.retain
            self.link.publish_batch(again, [], qos, retain, self.state.seq)
        if items or again:
            log.info("republished %d forecasts the previous run made", len(items) + len(again))

    # -- model swap -----------------------------------------------------------------------------
    def _check_file(self) -> None:
        stamp = FileStamp.of(self._watched)
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            log.info("bundle file %s changed; reloading", self.cfg.model.path)
            self.reload()

    def reload(self) -> bool:
        """Load, verify and self-test the bundle again; keep serving the old one on failure."""
        self.notifier.reloading()
        try:
            model = load(self.cfg, self.model_path)
        except (BundleError, RuntimeError, ValueError, OSError) as e:
            log.error("reload failed, still serving %s: %s", self.pipeline.model_id, e)
            self.notifier.ready()
            return False
        return self._swap_in(model)

    def _swap_in(self, model: LoadedModel) -> bool:
        """Serve `model` (loaded and self-tested) from the next batch on; False: refused."""
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
        self.checkpoint()  # the journal restarts for the new bundle
        self.notifier.ready()
        self.notifier.status(f"serving {self.pipeline.model_id} ({self.pipeline.mode} mode)")
        return True
