"""Messages in, forecast messages out: decode -> jump guard -> grid aligner -> stream table and
engine -> encode.

Everything that depends on the loaded bundle lives here, so a model swap is one assignment
between batches. No MQTT, no threads: the daemon feeds it, tests drive it directly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from seqcast.edge.clock import ClockJudge
from seqcast.edge.config import InputConfig, OutputConfig, QualityConfig, StreamsConfig
from seqcast.edge.counters import Counters
from seqcast.edge.model.bundle import Bundle, Manifest
from seqcast.edge.model.runtime import LoadedModel
from seqcast.edge.path.align import Aligner
from seqcast.edge.path.decode import PayloadDecoder, PayloadError
from seqcast.edge.path.encode import encode_rounded
from seqcast.edge.path.engine import Engine, Scaling
from seqcast.edge.path.influx import encode_influx
from seqcast.edge.path.jumps import JumpGuard, grid_hole, step_hole
from seqcast.edge.path.quality import Quality
from seqcast.edge.path.streams import StreamTable
from seqcast.edge.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 4096  # samples per engine call (see Pipeline.handle_chunks)
Item = tuple[str, float, tuple[float, ...]]  # a decoded sample: (stream, ts, values)


class Inbound(Protocol):
    """One received message (the MQTT layer's InboundMessage has this shape)."""

    @property
    def stream(self) -> str: ...
    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def received_at(self) -> float: ...


def resolve_mode(requested: str, model: LoadedModel) -> str:
    if requested == "auto":
        return "stream" if model.has_step else "window"
    if requested == "stream" and not model.has_step:
        raise ValueError(
            f"model.mode: {model.bundle.model_id} has no step model (window-only architecture); "
            'use mode = "window" or "auto"'
        )
    return requested


class Pipeline:
    """The data path for one loaded model; `swap` installs another between batches.

    Settings are the validated config sections, as they are; counters go to `counters`, the
    daemon's registry, which outlives every model.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        mode: str = "auto",
        input: InputConfig | None = None,
        streams: StreamsConfig | None = None,
        output_topic: str = OutputConfig().topic,
        counters: Counters | None = None,
        quality: QualityConfig | None = None,
        output_format: str = OutputConfig().format,
    ) -> None:
        self.requested_mode = mode
        self.input = input if input is not None else InputConfig()
        self.streams = streams if streams is not None else StreamsConfig()
        self.output_topic = output_topic  # template with {stream}
        self.quality_config = quality if quality is not None else QualityConfig()
        self._encode = encode_influx if output_format == "influx" else encode_rounded
        self.counters = counters if counters is not None else Counters()
        self._warn = RateLimitedLog(log)
        self.clock = ClockJudge(sync_file=self.input.clock_synced_file)
        # messages rejected only because the device clock looks wrong (see edge/clock.py): the
        # daemon leaves them unacknowledged, so the broker delivers them again later
        self.held: list[Inbound] = []
        self._install(model, table=None)
        self.counters.gauge("streams", lambda: len(self.table))

    def _install(self, model: LoadedModel, table: StreamTable | None) -> None:
        m = model.bundle.manifest
        self.model = model
        self.mode = resolve_mode(self.requested_mode, model)
        self.manifest = m
        self.model_id = model.bundle.model_id
        # a bundle from before the grid was recorded does not say where its steps fall: as before
        grid, aligning = m.grid, self.streams.align != "off" and m.grid_spec is not None
        # aligned, the steps are on the bundle's grid: a hole the trainer would not have filled
        # (more than max_fill steps) restarts the stream, as it started a new segment in training
        # (half a step of slack: months are 28 to 31 days)
        reset_steps = m.max_fill + 1.5 if aligning else self.streams.max_gap
        if table is None:
            table = StreamTable(
                capacity=self.streams.max_streams,
                seq_len=m.seq_len,
                n_features=m.input_width,  # the model's input rows: calendar included
                state_shapes=[tuple(st.shape) for st in m.state] if self.mode == "stream" else [],
                max_gap_s=reset_steps * m.interval_s,
                out_of_order=self.streams.out_of_order,
                counters=self.counters.view("streams_"),
            )
        self.table = table
        self.quality = self._scorer(m)  # a new model is scored from scratch
        table.on_reset = self.quality.reset if self.quality is not None else None
        self.aligner = Aligner(
            grid,
            self.streams.align if aligning else "off",
            m.max_fill,
            self.streams.grace * m.interval_s,
            self.streams.max_streams,
            len(m.features),
            table.counters,
        )
        # every sample after a hole is held for reorder_s; beyond guard_steps, one that the old
        # timeline leaves behind is a glitch and dropped. Aligned, a hole up to max_fill is filled
        # (so not a glitch), and a sensor's jitter within its intervals adds up to one more
        guard_steps = max(self.streams.max_gap, m.max_fill + 2.5) if aligning else reset_steps
        self.guard = JumpGuard(
            table,
            guard_steps * m.interval_s,
            table.counters,
            self.streams.reorder_s,
            latest=self.aligner.latest if aligning else None,
            hole=grid_hole(grid) if aligning else step_hole(m.interval_s),
        )
        self._calendar = grid if grid.calendar else None
        self.aligning = aligning

        sc = m.scaler
        scaling = Scaling(
            np.asarray(sc.feature_mean, np.float64),
            np.asarray(sc.feature_std, np.float64),
            *m.output_scaling(),  # per output column: quantiles are in their target's units
        )
        self.columns = tuple(m.output_columns)  # the payload's keys per step
        self.engine = Engine(
            model,
            table,
            scaling,
            self.mode,
            m.min_history,
            m.mask_value,
            self.counters,
            max_deviation=self.input.max_deviation,
            features=m.features,
            calendar=tuple(m.calendar),
            quality=self.quality,
        )
        self.decoder = PayloadDecoder(m.features, self.input)

    def _scorer(self, m: Manifest) -> Quality | None:
        """Live quality for the targets that are also inputs (their actuals arrive)."""
        qc = self.quality_config
        scored = [t for t in m.targets if t in m.features]
        if not qc.enabled or not scored:
            return None
        per_target = 1 + len(m.quantiles or ())  # a target's point forecast, then its quantiles
        return Quality(
            self.streams.max_streams,
            m.horizon,
            [m.features.index(t) for t in scored],
            [m.targets.index(t) * per_target for t in scored],
            qc.window,
            qc.drift_after,
            self.counters,
            scored,
        )

    def quality_snapshot(self) -> dict[str, Any]:
        """Live forecast quality (path/quality.py): per stream `mae` and `persistence_mae` per
        horizon step, `n` steps scored, `drifting`; and a `summary`. Read-only."""
        if self.quality is None:  # off, or no target is an input: nothing to score
            qc = self.quality_config
            return Quality(0, 0, [], [], qc.window, qc.drift_after, self.counters).snapshot([])
        return self.quality.snapshot(self.table.items())

    def quality_counts(self) -> dict[str, int]:
        """`streams_scored` and `streams_drifting` of `quality_snapshot()["summary"]`, at a
        fraction of its cost (the status message carries them)."""
        if self.quality is None:
            return {"streams_scored": 0, "streams_drifting": 0}
        return self.quality.counts(self.table.slots())

    def quality_message(self) -> bytes:
        """`quality_snapshot` as the `[quality] topic` payload: JSON with `ts` and `model_id`."""
        doc = {"ts": time.time(), "model_id": self.model_id, **self.quality_snapshot()}
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()

    def alignment(self) -> str:
        """How samples meet the model's grid, for the log."""
        if self.aligning:
            mode, grid = self.streams.align, self.manifest.grid
            return f"samples aligned to its {grid.describe()} grid ({mode})"
        if self.streams.align == "off":
            return "every sample is one step (streams.align = off)"
        return "every sample is one step (the bundle records no grid: retrain it to align)"

    @property
    def bundle(self) -> Bundle:
        return self.model.bundle

    def handle(self, messages: Sequence[Inbound]) -> list[tuple[str, bytes]]:
        """One batch: every message decoded, every sample processed, forecasts encoded.

        Bad input is counted in `bad_payloads` and `bad_<reason>`: a message the decoder rejects
        counts once; a sample out of the training range (`input.max_deviation`, checked by the
        engine) counts once per rejected sample as `bad_out_of_range`, and the message's other
        samples are processed.
        """
        return [f for _, forecasts in self.handle_chunks(messages) for f in forecasts]

    def handle_chunks(
        self, messages: Sequence[Inbound]
    ) -> Iterator[tuple[list[Item], list[tuple[str, bytes]]]]:
        """`handle`, one chunk at a time: (the chunk's decoded samples, their forecast messages).

        The samples are those taken in, before the jump guard holds any back: the daemon
        journals them, and replays them through `step` after a crash.

        Samples go to the engine in chunks of about CHUNK_SAMPLES (in order, so the result is the
        same), which bounds the memory a burst of many-sample messages takes in passing; the
        daemon publishes (and journals) each chunk before the next is computed.
        """
        items: list[Item] = []
        counters = self.counters
        counters.add("messages", len(messages))
        for msg in messages:
            try:
                decoded = self.decoder.decode(msg.payload, msg.received_at)
            except PayloadError as e:
                if e.reason == "future_timestamp":
                    self.clock.saw(future=True)
                    if self.clock.device_clock_suspect():  # not the sensor's fault: keep it
                        self.held.append(msg)
                        continue
                counters.add("bad_payloads")
                counters.add(f"bad_{e.reason}")
                self._warn(e.reason, "bad payload on %s (%s): %s", msg.topic, e.reason, e)
                continue
            if len(decoded.samples) > self.decoder.unstamped:  # it carried its own timestamps
                self.clock.saw(future=False)
            if decoded.extra_fields:
                counters.add("extra_fields", decoded.extra_fields)
                self._warn("extra_fields", "ignoring unknown fields in payload on %s", msg.topic)
            for sample in decoded.samples:
                items.append((msg.stream, sample.ts, sample.values))
            if len(items) >= CHUNK_SAMPLES:
                yield items, self.step(items)
                items = []
        if items:
            yield items, self.step(items)

    def step(self, items: list[Item]) -> list[tuple[str, bytes]]:
        """Decoded samples through the jump guard, the aligner and the engine: their forecast
        messages. Live chunks and the journal's replay at start both come through here."""
        screened = self.engine.screen(items)  # an absurd value never joins an interval's mean
        return self.run(self.aligner.process(self.guard.filter(screened), time.monotonic()))

    def tick(self) -> tuple[list[tuple[str, bytes]], list[str]]:
        """What waiting decided, between batches: held runs whose wait is over (path/jumps.py)
        and open intervals silent for `grace` intervals (path/align.py). Returns their forecast
        messages and the streams whose open interval was stepped (the journal records them)."""
        now = time.monotonic()
        steps = self.aligner.process(self.guard.due(), now) if self.guard.holding else []
        flushed = self.aligner.flush_due(now)
        if not steps and not flushed:
            return [], []
        return self.run(steps + flushed), list(dict.fromkeys(s for s, _, _ in flushed))

    def replay_flush(self, streams: list[str]) -> list[tuple[str, bytes]]:
        """The journal's record of `tick` stepping these streams' open intervals."""
        return self.run(self.aligner.flush_streams(streams))

    def take_held(self) -> list[Inbound]:
        """The messages held for a suspect device clock since the last call."""
        held, self.held = self.held, []
        return held

    def run(self, items: list[Item]) -> list[tuple[str, bytes]]:
        """Samples (stream, ts, values) the guard let through, into the engine: their forecast
        messages."""
        out: list[tuple[str, bytes]] = []
        m = self.manifest
        for f in self.engine.process(items):
            grid = self._calendar  # months are not a fixed number of seconds
            times = None if grid is None else [grid.shift(f.ts, k) for k in range(1, m.horizon + 1)]
            try:
                payload = self._encode(
                    f.stream, f.ts, self.model_id, self.columns, m.interval_s, f.values, times
                )
            except ValueError as e:
                self.counters.add("encode_errors")
                self._warn("encode", "forecast for %s not published: %s", f.stream, e)
                continue
            out.append((self.output_topic.replace("{stream}", f.stream), payload))
        return out

    def swap(self, model: LoadedModel) -> bool:
        """Serve a new (already self-tested) model from the next batch on.

        Streams keep their buffers and state when the new model reads the same features with
        the same window and state shapes; otherwise every stream restarts warm-up. Returns
        whether streams were kept.
        """
        old, new = self.manifest, model.bundle.manifest
        new_mode = resolve_mode(self.requested_mode, model)
        compatible = (
            new_mode == self.mode
            and old.features == new.features
            and old.seq_len == new.seq_len
            and [s.shape for s in old.state] == [s.shape for s in new.state]
        )
        held, aligner = (self.guard.runs, self.guard.near), self.aligner
        self._install(model, table=self.table if compatible else None)
        if compatible:  # the streams are kept, and so are their held runs
            self.guard.runs, self.guard.near = held
            if (old.grid, old.max_fill) == (new.grid, new.max_fill):  # and their open intervals
                self.aligner = aligner
                if self.guard.latest is not None:
                    self.guard.latest = aligner.latest
        return compatible
