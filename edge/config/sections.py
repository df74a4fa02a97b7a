"""The `edge.toml` sections: frozen, typed dataclasses, each field with its default and rules.

Every field carries its default and a one-line ``help`` in ``field(metadata=...)``; a small generic
validator walks the dataclass fields and their type hints, so adding a setting is one line. Unknown
keys are errors (see `files.parse_config`). Config objects do no I/O. Each section goes to its owner
as it is: `[mqtt]` to the MQTT link, `[input]` to the decoder, `[streams]` to the stream table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from seqcast.edge.config.base import Section, opt
from seqcast.edge.config.services import (
    DeployConfig,
    HomeAssistantConfig,
    MetricsConfig,
    QualityConfig,
)
from seqcast.edge.config.topics import (
    PARTITION_FIELD,
    fill_partition,
    status_template_rule,
    stream_template_rule,
)
from seqcast.edge.config.validation import broker_error, nats_url_error, show, split_address

# -- field rules ---------------------------------------------------------------------------------


def _client_id(value: str) -> str | None:
    if len(value) > 128:
        return "must be at most 128 characters"
    if any(c in value for c in "+#/"):
        return "must not contain '+', '#' or '/'"
    return None


_PARTITION = re.compile(r"[A-Za-z0-9_-]{1,32}")
PARTITION_DIR = "partition-"  # a partitioned daemon's state lives in <state.dir>/partition-<P>


def _partition(value: str) -> str | None:
    if value and not _PARTITION.fullmatch(value):
        return "must be 1-32 of A-Z a-z 0-9 _ - (or empty: not partitioned)"
    return None


_STREAM_TOPIC = stream_template_rule
_STATUS_TOPIC = status_template_rule
_PW = "mqtt-password"


def _topics_overlap(a: str, b: str) -> bool:
    """Whether some stream name makes template `a` and template `b` name the same topic."""
    la, lb = a.split("/"), b.split("/")
    return len(la) == len(lb) and all(
        x == y or "{stream}" in (x, y) for x, y in zip(la, lb, strict=True)
    )


# -- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TlsConfig(Section):
    """TLS to the broker; giving any file turns it on unless `enabled = false` is explicit."""

    enabled: bool = opt(False, "Connect with TLS")
    ca_file: Path | None = opt(
        None, "CA bundle (PEM) to verify the broker; unset = system store", example="ca.pem"
    )
    cert_file: Path | None = opt(None, "Client certificate (PEM)", example="client.pem")
    key_file: Path | None = opt(None, "Client private key (PEM)", example="client.key")
    insecure: bool = opt(False, "Skip broker hostname verification (testing only)")

    @staticmethod
    def _implied(raw: Mapping[str, Any]) -> dict[str, Any]:
        files = ("ca_file", "cert_file", "key_file")
        return {"enabled": True} if any(k in raw for k in files) else {}

    def _rules(self) -> Iterator[tuple[str, str]]:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            yield missing, "cert_file and key_file must be given together"


@dataclass(frozen=True, kw_only=True)
class MqttConfig(Section):
    """Broker connection."""

    host: str = opt("localhost", "Broker host name or address")
    port: int = opt(1883, "Broker TCP port", ge=1, le=65535)
    fallback_brokers: tuple[str, ...] = opt(
        (),
        'More brokers, "host:port" each: whenever the current one cannot be reached, the next '
        "is tried (round the list, host:port first). Nodes of one cluster that share the session: "
        "the same client id, credentials and TLS settings go to each",
        check=broker_error,
        example=["nats-2:1883", "nats-3:1883"],
    )
    client_id: str = opt(
        "",
        "MQTT client id, unique per broker; empty = seqcast-<hostname>. With [input] partition "
        'set it must contain {partition}, e.g. "seqcast-part-{partition}"',
        check=_client_id,
    )
    protocol: Literal["3.1.1", "5"] = opt("3.1.1", "MQTT protocol version")
    keepalive: int = opt(60, "Keepalive interval in seconds", ge=5, le=3600)
    username: str | None = opt(None, "Broker user name", example="seqcast")
    password_file: Path | None = opt(
        None, "Password file; a relative name is looked up in $CREDENTIALS_DIRECTORY", example=_PW
    )
    clean_session: bool = opt(False, "Start a clean session (false: persistent session)")
    session_expiry_s: int = opt(86400, "Session expiry in s, MQTT 5 only", ge=0, le=2**32 - 1)
    qos_in: int = opt(1, "QoS of the input subscription", ge=0, le=2)
    reconnect_min_s: float = opt(1.0, "First reconnect delay in seconds", gt=0)
    reconnect_max_s: float = opt(60.0, "Longest reconnect delay in seconds", gt=0)
    tls: TlsConfig = opt(TlsConfig(), "TLS settings")

    @property
    def brokers(self) -> list[tuple[str, int]]:
        """(host, port) of every broker in the order they are tried: host and port first."""
        more = [split_address(b) for b in self.fallback_brokers]
        return [(self.host, self.port), *(b for b in more if b is not None)]

    def _rules(self) -> Iterator[tuple[str, str]]:
        if self.reconnect_max_s < self.reconnect_min_s:
            rule = f"must be >= reconnect_min_s ({self.reconnect_min_s})"
            yield "reconnect_max_s", f"{rule}, got {self.reconnect_max_s}"


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Section):
    """The model bundle and the interpreter."""

    path: Path = opt(MISSING, "Model bundle (*.seqcast)", example="/var/lib/seqcast/model.seqcast")
    mode: Literal["auto", "stream", "window"] = opt(
        "auto", "Inference mode; auto = stream when the bundle has a step model"
    )
    num_threads: int = opt(1, "Interpreter threads", ge=1, le=64)
    backend: Literal["auto", "litert", "tflite_runtime"] = opt(
        "auto", "Interpreter backend; auto tries litert, then tflite_runtime"
    )
    watch: bool = opt(True, "Reload the model when the bundle file changes")
    isolate_selftest: bool = opt(
        True, "Run each backend's first self-test in a child process, so a crash moves on"
    )


@dataclass(frozen=True, kw_only=True)
class InputConfig(Section):
    """Sensor messages."""

    topic: str = opt(
        "sensors/{stream}/data",
        "Input topic template; a partitioned daemon's carries {partition}, e.g. "
        '"part/{partition}/sensors/{stream}" (deploy/README.md, Partitioned workers)',
        check=_STREAM_TOPIC,
    )
    partition: str = opt(
        "",
        "The partition this daemon serves, filled into {partition} in input.topic, output.topic "
        "and mqtt.client_id; its state goes to <state.dir>/partition-<P>. Empty = not "
        "partitioned. seqcast-edge run --partition P overrides it (the unit seqcast-edge@P)",
        check=_partition,
        empty_ok=True,
    )
    format: Literal["auto", "json", "senml", "csv"] = opt("auto", "Payload format")
    timestamp_field: str = opt("ts", "JSON field holding the timestamp")
    extra_fields: Literal["ignore", "reject"] = opt(
        "ignore", "What to do with fields the model does not use"
    )
    max_payload_bytes: int = opt(65536, "Largest accepted payload", ge=16, le=16777216)
    max_samples_per_message: int = opt(1000, "Most samples accepted in one message", ge=1)
    max_future_s: float = opt(86400.0, "Reject samples this many seconds ahead of the clock", ge=0)
    max_stream_id_bytes: int = opt(
        128, "Longest stream id (UTF-8 bytes); longer ones are rejected and counted", ge=1, le=65535
    )
    clock_synced_file: Path = opt(
        Path("/run/systemd/timesync/synchronized"),
        "A file that exists once the device clock is synchronised (systemd-timesyncd's; with "
        "chrony use a file your own hook creates). Until then, samples 'in the future' are held "
        "unacknowledged instead of rejected when most samples look that way",
    )
    max_deviation: float = opt(
        20.0,
        "Reject values further than this many training standard deviations from the training "
        "mean (0 = no limit)",
        ge=0,
    )


@dataclass(frozen=True, kw_only=True)
class OutputConfig(Section):
    """Forecast messages."""

    topic: str = opt("forecasts/{stream}", "Output topic template", check=_STREAM_TOPIC)
    format: Literal["json", "influx"] = opt(
        "json", "Forecast payload: JSON, or InfluxDB line protocol (one line per step)"
    )
    qos: int = opt(1, "QoS of published forecasts", ge=0, le=2)
    retain: bool = opt(False, "Publish forecasts retained")
    max_pending: int = opt(
        50000,
        "Forecasts the broker has not acknowledged yet before input is paused (backpressure)",
        ge=1,
    )


@dataclass(frozen=True, kw_only=True)
class StreamsConfig(Section):
    """The per-stream table."""

    max_streams: int = opt(10000, "Most streams kept; the least recently used is evicted", ge=1)
    max_gap: float = opt(
        4.0,
        "A jump further ahead than this many intervals is held until confirmed, and resets the "
        "stream when align is off (aligned, a hole longer than the bundle's max_fill does)",
        gt=0,
    )
    out_of_order: Literal["drop", "reset"] = opt(
        "drop", "Late or duplicate samples: drop (and count) them, or reset the stream"
    )
    reorder_s: float = opt(
        10.0,
        "Seconds a sample after a hole (a missing interval) is held for older samples a "
        "broker or publisher may still deliver out of order; 0 holds only jumps beyond max_gap",
        ge=0,
    )
    align: Literal["mean", "last", "off"] = opt(
        "mean",
        "Samples off the model's grid: average (mean) or take the last sample of each interval, "
        "or step every sample as one interval (off)",
    )
    grace: float = opt(
        1.0,
        "Intervals of silence after which a stream's open interval is stepped without waiting "
        "for a sample of a later one",
        gt=0,
    )


@dataclass(frozen=True, kw_only=True)
class StatusConfig(Section):
    """Retained status messages (online/offline and counters)."""

    topic: str = opt("seqcast/{client_id}/status", "Status topic", check=_STATUS_TOPIC)
    interval_s: float = opt(30.0, "Seconds between counter publications", gt=0)


@dataclass(frozen=True, kw_only=True)
class StateConfig(Section):
    """Local state: snapshots and the outbox."""

    dir: Path = opt(Path("/var/lib/seqcast"), "State directory")
    snapshot_interval_s: float = opt(
        300.0, "Seconds between stream snapshots; 0 disables periodic snapshots", ge=0
    )
    outbox_max_bytes: int = opt(16777216, "Bytes of unsent forecasts kept while offline", ge=0)
    queue_size: int = opt(10000, "Incoming message queue length", ge=1)
    replicate: tuple[str, ...] = opt(
        (),
        "NATS servers whose JetStream keeps a copy of this state (key: mqtt.client_id), so a "
        "standby with the same client id on another host takes over where this daemon stopped; "
        "empty = local only; needs nats-py",
        check=nats_url_error,
        example=["nats://nats-1:4222", "nats://nats-2:4222"],
    )
    replicas: int = opt(1, "Copies JetStream keeps of that state (3 on 3 nodes)", ge=1, le=5)


@dataclass(frozen=True, kw_only=True)
class LogConfig(Section):
    """Logging (to stderr; journald keeps it)."""

    level: Literal["info", "debug", "warning", "error"] = opt("info", "Log level")
    summary_interval_s: float = opt(
        600.0, "Seconds between one-line summaries while running (info level); 0 = none", ge=0
    )


@dataclass(frozen=True, kw_only=True)
class EdgeConfig(Section):
    """The whole `edge.toml`."""

    mqtt: MqttConfig = opt(MqttConfig(), "Broker connection")
    model: ModelConfig = opt(MISSING, "Model bundle")
    input: InputConfig = opt(InputConfig(), "Sensor messages")
    output: OutputConfig = opt(OutputConfig(), "Forecast messages")
    streams: StreamsConfig = opt(StreamsConfig(), "Stream table")
    status: StatusConfig = opt(StatusConfig(), "Status messages")
    state: StateConfig = opt(StateConfig(), "Local state")
    log: LogConfig = opt(LogConfig(), "Logging")
    deploy: DeployConfig = opt(DeployConfig(), "Signed model delivery")
    metrics: MetricsConfig = opt(MetricsConfig(), "Prometheus metrics")
    homeassistant: HomeAssistantConfig = opt(HomeAssistantConfig(), "Home Assistant discovery")
    quality: QualityConfig = opt(QualityConfig(), "Live forecast quality")

    @property
    def status_topic(self) -> str:
        """The status topic with `{client_id}` filled in."""
        return self.status.topic.replace("{client_id}", self.mqtt.client_id)

    @property
    def deploy_topic(self) -> str:
        """The release topic with `{channel}` filled in."""
        return self.deploy.topic.replace("{channel}", self.deploy.channel)

    @property
    def birth_topic(self) -> str | None:
        """Home Assistant's birth topic when discovery is on (the link subscribes), else None."""
        return self.homeassistant.birth_topic if self.homeassistant.enabled else None

    @property
    def quality_topic(self) -> str:
        """The quality topic with `{client_id}` filled in ("" when off)."""
        return self.quality.topic.replace("{client_id}", self.mqtt.client_id)

    @property
    def deploy_events_topic(self) -> str:
        """The deploy events topic with `{client_id}` filled in."""
        return self.deploy.events_topic.replace("{client_id}", self.mqtt.client_id)

    def _rules(self) -> Iterator[tuple[str, str]]:
        if problems := list(self._partition_rules()):
            yield from problems  # the topics below are not what the daemon would use
            return
        cfg = self.resolved()
        inp = cfg.input.topic
        topics = [("output.topic", cfg.output.topic), ("status.topic", cfg.status_topic)]
        topics += [("deploy.events_topic", cfg.deploy_events_topic)]
        if self.quality.topic:
            topics += [("quality.topic", cfg.quality_topic)]
        if self.deploy.enabled:
            topics += [("deploy.topic", cfg.deploy_topic)]
        if self.homeassistant.enabled:
            topics += [("homeassistant.birth_topic", self.homeassistant.birth_topic)]
        for key, topic in topics:
            if _topics_overlap(topic, inp):
                yield key, f"must not overlap input.topic {show(inp)}, got {show(topic)}"

    def _partition_rules(self) -> Iterator[tuple[str, str]]:
        """`{partition}` and `[input] partition` come together: a template that carries it needs
        a partition, and a partition needs an input topic and a client id that carry it (the
        workers of one partition, and only they, share its subscription and MQTT session)."""
        part = self.input.partition
        carriers = [
            ("input.topic", self.input.topic),
            ("output.topic", self.output.topic),
            ("mqtt.client_id", self.mqtt.client_id),
        ]
        if not part:
            using = [key for key, value in carriers if PARTITION_FIELD in value]
            if using:
                yield (
                    "input.partition",
                    f"must be set (here or with --partition P) when {using[0]} contains "
                    f"{PARTITION_FIELD}",
                )
            return
        for key, value in carriers:  # the first one missing: one line
            if key != "output.topic" and PARTITION_FIELD not in value:
                yield (
                    key,
                    (
                        f"must contain {PARTITION_FIELD} when input.partition is set "
                        f"({show(part)}), got {show(value)}"
                    ),
                )
                return
        if len(fill_partition(self.mqtt.client_id, part)) > 128:
            yield "mqtt.client_id", "must be at most 128 characters with {partition} filled in"

    def resolved(self) -> EdgeConfig:
        """This config as a partitioned daemon uses it: `{partition}` filled in (input and output
        topics, client id) and the state in `<state.dir>/partition-<P>`; itself when not
        partitioned. `files.parse_config` returns it, so no owner sees a `{partition}`."""
        part = self.input.partition
        if not part or PARTITION_FIELD not in self.input.topic:  # not partitioned, or done
            return self
        return replace(
            self,
            mqtt=replace(self.mqtt, client_id=fill_partition(self.mqtt.client_id, part)),
            input=replace(self.input, topic=fill_partition(self.input.topic, part)),
            output=replace(self.output, topic=fill_partition(self.output.topic, part)),
            state=replace(self.state, dir=self.state.dir / f"{PARTITION_DIR}{part}"),
        )
