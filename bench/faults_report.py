"""Benchmark 5 (faults), data and judgement: the series and the bad-input corpus the scenarios of
`bench.faults` send, the uninterrupted reference they are judged against, and the report.

The reference is what `tests/daemon_harness.offline_forecasts` computes: the bundle's step model
stepped one sample at a time from zero state with the manifest's scaler; a received value is
right when `np.float32(received) == np.float32(expected)`, its forecast timestamps exactly.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import bundles as B
from seqcast.edge import calendar

TS0 = B.TS0  # 2001, on the grid: no good sample is "in the future"
STEP = B.INTERVAL_S
DAY = 86400.0
Sample = tuple[float, tuple[float, float]]
Message = tuple[str, bytes, str]  # topic, payload, kind ("good" for a good sample)


def series(index: int, n: int) -> list[Sample]:
    """Stream `index`'s first n samples: (ts, (load, temp)), values as their JSON text reads."""
    out = []
    for t in range(n):
        phase = 2 * math.pi * ((t + 7 * index) % 48) / 48
        load = round(100 + 30 * math.sin(phase) + 0.37 * (t % 5), 3)
        out.append((TS0 + t * STEP, (load, round(20 + 5 * math.sin(phase - 1.0), 2))))
    return out


def payload(ts: float, v: tuple[float, float], **extra: Any) -> bytes:
    return json.dumps({"ts": ts, "load": v[0], "temp": v[1], **extra}).encode()


def topic(stream: str) -> str:
    return f"sensors/{stream}/data"


# -- the bad-input corpus ----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    group: str
    make: Callable[[float, int], bytes]  # (ts of the stream's last good sample, n) -> payload
    topic: Callable[[str, int], str] | None = None  # None: the good stream's own topic
    delivered: bool = True  # False: the broker never hands it to the daemon


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _mid(t: float) -> float:
    return t + STEP / 2  # between two good samples: if taken, it visibly changes the stream


def _o(t: float, **kv: Any) -> bytes:
    return _j({"ts": _mid(t), "load": 101.5, "temp": 20.5, **kv})


def _r(text: bytes) -> Callable[[float, int], bytes]:
    return lambda t, n: text % _mid(t) if b"%r" in text else text


def _ml(t: float, **first: Any) -> bytes:  # SenML: load (changed by `first`), then temp
    rec = {k: v for k, v in {"bt": _mid(t), "n": "load", "v": 101.5, **first}.items() if v != ""}
    return _j([rec, {"n": "temp", "v": 20.5}])


def _on(level: str) -> Callable[[str, int], str]:
    return lambda stream, n: level.format(stream=stream, n=n, long="L" * 130)


EXTRA = "extra fields (ignored)"
K = Kind
KINDS: list[Kind] = [
    K("truncated JSON", "malformed", _r(b'{"ts": %r, "load": 1')),
    K("not JSON", "malformed", _r(b"{not json")),
    K("nested 30,000 deep", "malformed", _r(b"[" * 30000 + b"]" * 30000)),
    K("invalid UTF-8", "malformed", _r(b'{"ts": %r, "load": "\xff", "temp": 1}')),
    K("BOM and NUL", "malformed", _r(b"\xef\xbb\xbf{\x00}")),
    K("empty payload", "malformed", _r(b"")),
    K("empty array", "wrong type", _r(b"[]")),
    K("JSON null", "wrong type", _r(b"null")),
    K("bare number", "wrong type", _r(b"42")),
    K("array of numbers", "wrong type", _r(b"[1, 2, 3]")),
    K("array with a non-object", "wrong type", _r(b'[{"ts": %r, "load": 1, "temp": 2}, 7]')),
    K("string for a number", "wrong type", lambda t, n: _o(t, load="12")),
    K("bool for a number", "wrong type", lambda t, n: _o(t, temp=True)),
    K("null for a number", "wrong type", lambda t, n: _o(t, load=None)),
    K("object for a number", "wrong type", lambda t, n: _o(t, load={"v": 1})),
    K("array for a number", "wrong type", lambda t, n: _o(t, temp=[20.5])),
    K("missing field", "fields", lambda t, n: _j({"ts": _mid(t), "load": 101.5})),
    K("only a timestamp", "fields", lambda t, n: _j({"ts": _mid(t)})),
    K(EXTRA, "fields", _r(b"")),  # not sent as such: this stream's good samples carry extras
    K("NaN literal", "non-finite", _r(b'{"ts": %r, "load": NaN, "temp": 1}')),
    K("-Infinity literal", "non-finite", _r(b'{"ts": %r, "load": 1, "temp": -Infinity}')),
    K("1e999 (overflows)", "non-finite", _r(b'{"ts": %r, "load": 1e999, "temp": 1}')),
    K("absurd: load 3.5e38", "absurd value", lambda t, n: _o(t, load=3.5e38)),
    K("absurd: load -1e30", "absurd value", lambda t, n: _o(t, load=-1e30)),
    K("absurd: temperature 1e15", "absurd value", lambda t, n: _o(t, temp=1e15)),
    K("timestamp text", "clock", lambda t, n: _o(t, ts="yesterday")),
    K("negative timestamp", "clock", lambda t, n: _o(t, ts=-5.0)),
    K("timestamp in ms", "clock", lambda t, n: _o(t, ts=_mid(t) * 1000)),
    K("far future (2096)", "clock", lambda t, n: _o(t, ts=4.0e9 + n)),
    K("one sample 20 days ahead", "clock", lambda t, n: _o(t, ts=t + 20 * DAY)),
    K("timestamp in 1970", "clock", lambda t, n: _o(t, ts=DAY + n)),
    K("duplicate timestamp", "clock", lambda t, n: _o(t, ts=t, load=140.0)),
    K("out of order (3 steps back)", "clock", lambda t, n: _o(t, ts=t - 3 * STEP)),
    K("huge payload (70 KB)", "size", lambda t, n: _o(t, pad="x" * 70000)),
    K("1,001 samples", "size", lambda t, n: _j([json.loads(_o(t + k / 1e3)) for k in range(1001)])),
    K("CSV: 4 values", "CSV", _r(b"%r,1.0,2.0,3.0")),
    K("CSV: text", "CSV", _r(b"abc,def")),
    K("CSV: 2 lines, 1 short", "CSV", _r(b"%r,101.5,20.5\n7")),
    K("SenML: string value", "SenML", lambda t, n: _ml(t, v="", vs="high")),
    K("SenML: missing feature", "SenML", lambda t, n: _j([{"bt": _mid(t), "n": "load", "v": 1}])),
    K("SenML: must-understand key", "SenML", lambda t, n: _ml(t, x_=1)),
    K("SenML: text base time", "SenML", lambda t, n: _ml(t, bt="now")),
    K("stream id of 130+ bytes", "topic", lambda t, n: _o(t), _on("sensors/{long}{n}/data")),
    K("empty stream level", "topic", lambda t, n: _o(t), _on("sensors//data")),
    K("topic outside the filter", "topic", lambda t, n: _o(t), _on("sensors/{stream}/x"), False),
]


def _bad(kind: Kind, stream: str, last_ts: float, n: int) -> tuple[str, bytes]:
    return (kind.topic or (lambda s, _: topic(s)))(stream, n), kind.make(last_ts, n)


def corpus(total: int, good: int, seed: int) -> dict[str, Any]:
    """`total` messages: every kind that targets a stream gets its own good stream (so whatever it
    does to that stream shows), plus two clean control streams; each good stream sends `good`
    samples with at most one bad message between two of them. Topic kinds go anywhere. Probes:
    one message of each kind on a fresh stream primed with two good samples."""
    rng = random.Random(seed)
    on_stream = [k for k in KINDS if k.topic is None]
    names = ["c0", "c1", *(f"k{i:02d}" for i in range(len(on_stream)))]
    kind_of = dict(zip(names[2:], on_stream, strict=True))
    bad_kinds = [k for k in KINDS if k.name != EXTRA]
    per, extra = divmod(total - len(names) * good, len(bad_kinds))
    if per < 1 or per + 1 > good - 2:
        raise ValueError(f"{total} messages do not fit {len(names)} streams of {good} samples")
    count = {k.name: per + (i < extra) for i, k in enumerate(bad_kinds)} | {EXTRA: good}
    data = {s: series(i, good) for i, s in enumerate(names)}
    gaps = {s: set(rng.sample(range(2, good), count[k.name] % good)) for s, k in kind_of.items()}
    loose: dict[int, list[Kind]] = {}
    for k in (k for k in KINDS if k.topic is not None):
        for _ in range(count[k.name]):
            loose.setdefault(rng.randrange(2, good), []).append(k)
    msgs: list[Message] = []
    for g in range(good):
        for s in names:
            (ts, v), kind = data[s][g], kind_of.get(s)
            if kind is not None and kind.name == EXTRA:
                msgs.append((topic(s), payload(ts, v, rssi=-71, fw="1.2.3"), EXTRA))
                continue
            msgs.append((topic(s), payload(ts, v), "good"))
            if kind is not None and g in gaps[s]:
                msgs.append((*_bad(kind, s, ts, len(msgs)), kind.name))
        for k in loose.get(g, []):
            msgs.append((*_bad(k, names[len(msgs) % len(names)], TS0, len(msgs)), k.name))
    probes = []
    for i, k in enumerate(KINDS):
        s, prime = f"p{i:02d}", series(100 + i, 3)
        bad = _bad(k, s, prime[1][0], i)
        if k.name == EXTRA:
            bad = (topic(s), payload(*prime[2], rssi=-71))
        prime_msgs = [(topic(s), payload(ts, v)) for ts, v in prime[:2]]
        probes.append({"kind": k.name, "prime": prime_msgs, "message": bad, "sent": k.delivered})
    stream_kind = {s: k.name for s, k in kind_of.items()}
    return {"messages": msgs, "data": data, "count": count, "stream_kind": stream_kind,
            "probes": probes}  # fmt: skip


# -- reference and comparison ------------------------------------------------------------------

_MODELS: dict[str, Any] = {}


@dataclass
class Reference:
    forecasts: dict[str, dict[float, np.ndarray]]  # stream -> ts -> float32 (horizon, targets)
    interval: float
    targets: list[str]
    min_history: int = 1  # samples before a stream's first forecast
    max_gap_s: float = math.inf  # a longer gap restarts the warm-up


def reference(
    bundle: Path, data: dict[str, list[Sample]], max_gap_s: float = math.inf
) -> Reference:
    """`max_gap_s`: restart the warm-up after a longer gap, as the daemon's stream table does."""
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model

    if str(bundle) not in _MODELS:
        _MODELS[str(bundle)] = load_model(read_bundle(bundle))[0]
    model = _MODELS[str(bundle)]
    m = model.bundle.manifest
    sc = m.scaler
    out: dict[str, dict[float, np.ndarray]] = {}
    for name, samples in data.items():
        x = ((np.array([v for _, v in samples]) - sc.feature_mean) / sc.feature_std).astype("f4")
        x = np.hstack([x, calendar.columns(m.calendar, np.array([ts for ts, _ in samples]))])
        want, count, last = out.setdefault(name, {}), 0, math.inf
        for t, (ts, _) in enumerate(samples):
            if count == 0 or ts - last > max_gap_s:
                states, count = model.zero_states(1), 0
            y, states = model.step(x[t : t + 1], states)
            count, last = count + 1, ts
            if count >= m.min_history:
                y64 = y[0].astype(np.float64) * sc.target_std + sc.target_mean
                want[ts] = y64.astype(np.float32)
    return Reference(out, float(m.interval_s), list(m.targets), m.min_history, max_gap_s)


def right(ref: Reference, stream: str, ts: float, doc: dict[str, Any]) -> bool:
    want = ref.forecasts.get(stream, {}).get(ts)
    rows = doc.get("forecast")
    if want is None or not isinstance(rows, list) or len(rows) != len(want):
        return False
    try:
        if any(r["ts"] != ts + (k + 1) * ref.interval for k, r in enumerate(rows)):
            return False
        got = np.array([[r[t] for t in ref.targets] for r in rows], dtype=np.float32)
    except (KeyError, TypeError, ValueError):
        return False
    return bool(np.array_equal(got, want))


def spans(stamps: list[float]) -> list[list[int]]:
    """Sample timestamps as runs of step numbers (0: TS0): [[first, last], ...]."""
    out: list[list[int]] = []
    for k in sorted({round((ts - TS0) / STEP) for ts in stamps}):
        if out and k == out[-1][1] + 1:
            out[-1][1] = k
        else:
            out.append([k, k])
    return out


def analyse(
    ref: Reference,
    messages: list[tuple[float, str, bytes]],
    accepted_at: dict[Any, float] | None = None,
    broker_windows: list[tuple[float, float]] = (),  # type: ignore[assignment]
    rebuild: Callable[[list[Any], dict[Any, Any]], tuple[Reference, list[Any]]] | None = None,
) -> dict[str, Any]:
    """expected / received (unique (stream, ts)) / lost / wrong / duplicated / redelivered.

    A lost forecast whose input the broker acknowledged inside one of `broker_windows` (since
    its last save before a SIGKILL) may have lost its input with the broker; `rebuild(those,
    received)` finds the inputs the daemon never saw (`bench.faults_judge`) and makes the
    reference without them: what is lost or wrong against that one is the daemon's doing."""
    seen: dict[tuple[str, float], dict[str, Any]] = {}
    wrong = dup = dup_differs = dup_redelivered = redelivered = 0
    wrong_by: dict[str, int] = {}
    wrong_at: dict[str, list[float]] = {}
    examples: list[str] = []
    last = None
    for at, _, body in messages:
        try:
            doc = json.loads(body)
            key = (str(doc["stream"]), float(doc["ts"]))
        except (ValueError, KeyError, TypeError):
            wrong += 1
            continue
        last = at
        redelivered += (flag := bool(doc.pop("redelivered", False)))
        if key in seen:
            dup += 1
            dup_redelivered += flag
            dup_differs += doc != seen[key]
        else:
            seen[key] = doc
        if not right(ref, *key, doc):
            wrong += 1
            wrong_by[key[0]] = wrong_by.get(key[0], 0) + 1
            wrong_at.setdefault(key[0], []).append(key[1])
            if len(examples) < 3:
                examples.append(body.decode(errors="replace")[:300])
    expected = {(s, ts) for s, f in ref.forecasts.items() for ts in f}
    lost = sorted(expected - set(seen))
    at = accepted_at or {}
    by_broker = [k for k in lost if any(lo <= at.get(k, -1) <= hi for lo, hi in broker_windows)]
    per_stream = {
        s: {"expected": len(f), "lost": sum(k[0] == s for k in lost), "wrong": wrong_by.get(s, 0)}
        for s, f in ref.forecasts.items()
    }
    res = {"expected": len(expected), "received": len(seen), "lost": len(lost),
            "wrong": wrong,
            "wrong_other_streams": sum(n for s, n in wrong_by.items() if s not in ref.forecasts),
            "duplicated": dup, "duplicates_differing": dup_differs, "redelivered": dup_redelivered,
            "redelivered_all": redelivered, "lost_examples": [list(k) for k in lost[:5]],
            "wrong_examples": examples, "per_stream": per_stream, "last_arrival": last,
            "wrong_steps": {s: spans(ts) for s, ts in sorted(wrong_at.items())},
            "lost_inputs": len(by_broker), "lost_daemon": len(lost),
            "wrong_daemon": wrong}  # fmt: skip
    if by_broker and rebuild is not None:
        fair_ref, inputs = rebuild(by_broker, seen)
        fair = analyse(fair_ref, messages)
        # a forecast the broker acknowledged to the daemon and then lost is the broker's loss
        expect = {(s, ts) for s, f in fair_ref.forecasts.items() for ts in f}
        gone: dict[str, list[float]] = {}
        for stream, ts in inputs:
            gone.setdefault(stream, []).append(ts)
        lost_daemon = expect - set(seen) - set(by_broker)
        res.update(broker_lost_forecasts=len(by_broker), lost_inputs=len(inputs),
                   lost_daemon=len(lost_daemon),
                   wrong_daemon=fair["wrong"],
                   wrong_steps_daemon=fair["wrong_steps"],
                   lost_input_steps={k: spans(v) for k, v in sorted(gone.items())})  # fmt: skip
    return res
