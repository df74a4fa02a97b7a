"""Messages in, forecast messages out: decode -> stream table -> engine -> encode.

Everything that depends on the loaded bundle lives here, so a model swap is one assignment
between batches. No MQTT, no threads: the daemon feeds it, tests drive it directly.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.bundle import Bundle
from edge.codec import PayloadDecoder, PayloadError, encode_forecast
from edge.engine import Engine, Scaling
from edge.runtime import LoadedModel
from edge.ratelimit import RateLimitedLog
from edge.streams import StreamTable

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 4096  # samples per engine call (see Pipeline.handle)


class Inbound(Protocol):
    """One received message (the MQTT layer's InboundMessage has this shape)."""

    stream: str
    topic: str
    payload: bytes
    received_at: float


@dataclass(frozen=True)
class PipelineSettings:
    mode: str = "auto"  # "auto" | "stream" | "window"
    input_format: str = "auto"
    timestamp_field: str = "ts"
    extra_fields: str = "ignore"
    max_payload_bytes: int = 65536
    max_samples_per_message: int = 1000
    max_future_s: float = 86400.0
    max_streams: int = 10000
    max_gap: float = 4.0  # intervals
    out_of_order: str = "drop"


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
    def __init__(self, model: LoadedModel, settings: PipelineSettings, output_topic: str):
        self.settings = settings
        self.output_topic = output_topic  # template with {stream}
        self.bad_payloads: Counter[str] = Counter()
        self.extra_fields = 0
        self.messages = 0
        self.encode_errors = 0
        self._warn = RateLimitedLog(log)
        self._install(model, table=None)

    def _install(self, model: LoadedModel, table: StreamTable | None) -> None:
        m = model.bundle.manifest
        s = self.settings
        self.model = model
        self.mode = resolve_mode(s.mode, model)
        self.manifest = m
        self.model_id = model.bundle.model_id
        if table is None:
            table = StreamTable(
                capacity=s.max_streams,
                seq_len=m.seq_len,
                n_features=len(m.features),
                state_shapes=[tuple(st.shape) for st in m.state] if self.mode == "stream" else [],
                max_gap_s=s.max_gap * m.interval_s,
                out_of_order=s.out_of_order,
            )
        prev = getattr(self, "engine", None)
        if prev is not None and table is not prev.table:
            table.counters = prev.table.counters  # counters are cumulative across swaps
        self.table = table
        sc = m.scaler
        scaling = Scaling(*(np.asarray(v, np.float64) for v in (sc.feature_mean, sc.feature_std, sc.target_mean, sc.target_std)))
        self.engine = Engine(model, table, scaling, self.mode, m.min_history, m.mask_value)
        if prev is not None:
            self.engine.samples_in, self.engine.forecasts_out = prev.samples_in, prev.forecasts_out
            self.engine.invokes = prev.invokes
        self.decoder = PayloadDecoder(
            m.features,
            fmt=s.input_format,
            ts_field=s.timestamp_field,
            max_payload_bytes=s.max_payload_bytes,
            max_samples=s.max_samples_per_message,
            max_future_s=s.max_future_s,
            extra_fields=s.extra_fields,
        )

    @property
    def bundle(self) -> Bundle:
        return self.model.bundle

    def handle(self, messages: Sequence[Inbound]) -> list[tuple[str, bytes]]:
        """One batch: every message decoded, every sample processed, forecasts encoded.

        Samples go to the engine in chunks of about CHUNK_SAMPLES (in order, so the result is the
        same), which bounds the memory a burst of many-sample messages takes in passing.
        """
        out: list[tuple[str, bytes]] = []
        items: list[tuple[str, float, tuple[float, ...]]] = []
        for msg in messages:
            self.messages += 1
            try:
                decoded = self.decoder.decode(msg.payload, msg.received_at)
            except PayloadError as e:
                self.bad_payloads[e.reason] += 1
                self._warn(e.reason, "bad payload on %s (%s): %s", msg.topic, e.reason, e)
                continue
            if decoded.extra_fields:
                self.extra_fields += decoded.extra_fields
                self._warn("extra_fields", "ignoring unknown fields in payload on %s", msg.topic)
            for sample in decoded.samples:
                items.append((msg.stream, sample.ts, sample.values))
            if len(items) >= CHUNK_SAMPLES:
                self._run(items, out)
                items = []
        self._run(items, out)
        return out

    def _run(
        self, items: list[tuple[str, float, tuple[float, ...]]], out: list[tuple[str, bytes]]
    ) -> None:
        """Run `items` (stream, ts, values) through the engine; append forecast messages to out."""
        m = self.manifest
        for f in self.engine.process(items):
            try:
                payload = encode_forecast(f.stream, f.ts, self.model_id, m.targets, m.interval_s, f.values)
            except ValueError as e:
                self.encode_errors += 1
                self._warn("encode", "forecast for %s not published: %s", f.stream, e)
                continue
            out.append((self.output_topic.replace("{stream}", f.stream), payload))

    def swap(self, model: LoadedModel) -> bool:
        """Serve a new (already self-tested) model from the next batch on.

        Streams keep their buffers and state when the new model reads the same features with
        the same window and state shapes; otherwise every stream restarts warm-up. Returns
        whether streams were kept.
        """
        old, new = self.manifest, model.bundle.manifest
        new_mode = resolve_mode(self.settings.mode, model)
        compatible = (
            new_mode == self.mode
            and old.features == new.features
            and old.seq_len == new.seq_len
            and [s.shape for s in old.state] == [s.shape for s in new.state]
        )
        self._install(model, table=self.table if compatible else None)
        return compatible

    def counters(self) -> dict[str, int]:
        c: dict[str, int] = {
            "messages": self.messages,
            "samples": self.engine.samples_in,
            "forecasts": self.engine.forecasts_out,
            "invokes": self.engine.invokes,
            "streams": len(self.table),
            "bad_payloads": sum(self.bad_payloads.values()),
            "extra_fields": self.extra_fields,
            "encode_errors": self.encode_errors,
        }
        c.update({f"bad_{k}": v for k, v in self.bad_payloads.items()})
        c.update(self.table.counters.as_dict())
        return c
