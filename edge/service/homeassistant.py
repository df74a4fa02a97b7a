"""Home Assistant MQTT discovery (`[homeassistant]`): each stream's next-step forecast as a sensor.

One retained discovery message per stream, in Home Assistant's device-based schema, on
`<prefix>/device/<node_id>/config`: the stream is a device (`dev`) with one sensor per target
(`cmps`), whose state is the first step's value read from the stream's forecast topic and whose
attributes are the whole horizon with its intervals; availability follows the daemon's status
topic (`{"state": "online"|"offline"}`, the last will included). A message per stream (not one
for the whole daemon) keeps each one small and makes removal one empty retained payload.

When: a stream's first sight (and every stream at start), every stream again when Home
Assistant's birth message says `online` or another model (name, targets, quantiles) serves, and
an empty retained payload when a stream is evicted. The stream table records who joined and left
only while discovery watches it (`StreamTable.watch`), so the data path pays nothing per message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from importlib.metadata import PackageNotFoundError, version

from seqcast.edge import quantiles
from seqcast.edge.config import EdgeConfig
from seqcast.edge.counters import Counters
from seqcast.edge.model.bundle import Manifest
from seqcast.edge.mqtt import MqttLink
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.path.streams import StreamTable

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # node and object ids: Home Assistant's character class
_MAX_ID = 64
_STATE = "{{ value_json.state }}"  # the status topic's `online` / `offline`


def safe_id(text: str) -> str:
    """`text` in [A-Za-z0-9_-]; when that changed it (or it is long), a hash of the original
    keeps two ids that read alike apart."""
    slug = _UNSAFE.sub("_", text)
    if slug == text and len(slug) <= _MAX_ID:
        return slug
    return f"{slug[: _MAX_ID - 9]}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _literal(text: str) -> str:
    """A Jinja string literal (JSON's escapes are Jinja's too)."""
    return json.dumps(text)


def state_template(target: str) -> str:
    """The first step's value of `target`: the sensor's state."""
    return "{{ value_json.forecast[0][" + _literal(target) + "] }}"


def attributes_template(target: str, names: Sequence[str]) -> str:
    """A JSON object: the forecast's origin and model, and every step as
    `{"ts", "value", "p10", ...}` (this target's value and its intervals)."""
    fields = ", ".join(
        [f'"ts": s["ts"], "value": s[{_literal(target)}]']
        + [f"{_literal(n)}: s[{_literal(f'{target}_{n}')}]" for n in names]
    )
    return (
        "{% set ns = namespace(rows=[]) %}{% for s in value_json.forecast %}"
        f"{{% set ns.rows = ns.rows + [{{{fields}}}] %}}{{% endfor %}}"
        '{{ {"origin_ts": value_json.ts, "model": value_json.model, "forecast": ns.rows}'
        " | tojson }}"
    )


def package_version() -> str:
    try:
        return version("seqcast")
    except PackageNotFoundError:
        return "unknown"


class Discovery:
    """Publishes and removes the retained discovery configs; `poll` between batches."""

    def __init__(
        self,
        cfg: EdgeConfig,
        pipeline: Pipeline,
        link: MqttLink,
        counters: Counters,
    ) -> None:
        h = cfg.homeassistant
        self.prefix, self.patterns = h.prefix, h.streams
        self.client_id = cfg.mqtt.client_id
        self.status_topic = cfg.status_topic
        self.output_topic, self.qos = cfg.output.topic, cfg.output.qos
        self.pipeline, self.link, self.counters = pipeline, link, counters
        self._publish = link.publish_retained
        self._table: StreamTable | None = None
        self._model: tuple[object, ...] = ()
        self.announced: set[str] = set()  # streams whose config is standing at the broker
        self._origin = {"name": "seqcast", "sw": package_version()}

    def node_id(self, stream: str) -> str:
        return safe_id(f"seqcast_{self.client_id}_{stream}")

    def topic(self, stream: str) -> str:
        return f"{self.prefix}/device/{self.node_id(stream)}/config"

    def wanted(self, stream: str) -> bool:
        """The `streams` allowlist (fnmatch patterns); empty: every stream."""
        return not self.patterns or any(fnmatchcase(stream, p) for p in self.patterns)

    def config(self, stream: str, m: Manifest) -> dict[str, object]:
        node = self.node_id(stream)
        forecasts = self.output_topic.replace("{stream}", stream)
        names = [quantiles.name(q) for q in m.quantiles]
        sensors = {
            safe_id(t): {
                "p": "sensor",
                "name": f"{t} forecast",
                "unique_id": f"{node}_{safe_id(t)}",
                "value_template": state_template(t),
                "json_attributes_topic": forecasts,
                "json_attributes_template": attributes_template(t, names),
                "state_class": "measurement",
            }
            for t in m.targets
        }
        return {
            "dev": {"ids": [node], "name": stream, "mf": "seqcast", "mdl": m.name},
            "o": self._origin,
            "availability": [{"topic": self.status_topic, "value_template": _STATE}],
            "state_topic": forecasts,
            "qos": self.qos,
            "cmps": sensors,
        }

    def poll(self) -> None:
        """What changed since the last call: streams first seen or evicted, a birth message,
        a model of another name, targets or quantiles."""
        table, m = self.pipeline.table, self.pipeline.manifest
        if table is not self._table:  # at start, and after a swap that restarted every stream
            self._table = table
            table.watch()
            changes = [(s, True) for s in table.streams()]
        else:
            changes = table.take_changes()
        model = (m.name, tuple(m.targets), tuple(m.quantiles))
        if self.link.births.take() or model != self._model:  # every config again
            self._model = model
            for stream in self.announced:
                self._announce(stream)
        for stream, joined in dict(changes).items():  # a stream's last change counts
            if joined and stream not in self.announced and self.wanted(stream):
                self.announced.add(stream)
                self._announce(stream)
            elif not joined and stream in self.announced:
                self.announced.discard(stream)
                self._publish(self.topic(stream), b"")
                self.counters.add("hass_configs_removed")

    def _announce(self, stream: str) -> None:
        body = json.dumps(self.config(stream, self.pipeline.manifest)).encode()
        self._publish(self.topic(stream), body)
        self.counters.add("hass_configs_published")


def discovery_for(
    cfg: EdgeConfig, pipeline: Pipeline, link: MqttLink, counters: Counters
) -> Discovery | None:
    """The daemon's discovery, or None with `[homeassistant] enabled = false`."""
    return Discovery(cfg, pipeline, link, counters) if cfg.homeassistant.enabled else None
