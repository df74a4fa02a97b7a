"""`seqcast-edge replay`: publish a CSV file as sensor messages (demos, tests, benchmarks).

Reads the CSV with the standard library (no pandas on a device). Each row becomes one message on
the input topic of its stream, in row order; with `--copies K` the series is replayed as K
meters, meter i starting `--offset` rows later than meter i-1, interleaved row by row.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcast.edge.path.decode import PayloadError, parse_timestamp

log = logging.getLogger(__name__)

# CONNACK reasons (MQTT 3.1.1 and 5) that mean: wrong or missing user name or password
AUTH_REFUSALS = ("Not authorized", "Bad user name or password")
CONNECT_TIMEOUT_S = 5.0  # how long replay waits for the broker to accept the connection
TIME_COLUMNS = ("ts", "time", "Time", "timestamp", "Timestamp", "datetime", "date")


class ReplayError(ValueError):
    pass


@dataclass(frozen=True)
class Row:
    stream: str
    ts: float
    values: dict[str, float]


def read_rows(
    path: Path,
    *,
    time_col: str | None,
    features: list[str] | None,
    stream: str,
    stream_col: str | None,
    start: int = 0,
    limit: int | None = None,
) -> tuple[list[str], list[Row]]:
    try:
        f = path.open(newline="")
    except OSError as e:
        raise ReplayError(f"{path}: {e.strerror}") from None
    with f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        tcol = time_col or next((c for c in TIME_COLUMNS if c in cols), None)
        if tcol is None or tcol not in cols:
            raise ReplayError(
                f"{path}: no time column (looked for {time_col or ', '.join(TIME_COLUMNS)}); "
                "use --time-col"
            )
        if stream_col and stream_col not in cols:
            raise ReplayError(
                f"{path}: --stream-col {stream_col!r} is not a column ({', '.join(cols)})"
            )
        rows: list[Row] = []
        feats = features
        for i, rec in enumerate(reader):
            if i < start:
                continue
            if limit is not None and len(rows) >= limit:
                break
            if feats is None:  # every other column whose first value is a number
                feats = [c for c in cols if c not in (tcol, stream_col) and _is_number(rec[c])]
            missing = [c for c in feats if c not in rec]
            if missing:
                raise ReplayError(f"{path}: column {missing[0]!r} not found")
            try:
                ts = parse_timestamp(_number_or_text(rec[tcol]))
                values = {c: float(rec[c]) for c in feats}
            except (PayloadError, ValueError) as e:
                raise ReplayError(f"{path}: row {i + 2}: {e}") from None
            rows.append(Row(rec[stream_col] if stream_col else stream, ts, values))
    return feats or [], rows


def _is_number(text: str | None) -> bool:
    try:
        return text is not None and math.isfinite(float(text))
    except ValueError:
        return False


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def interleave_copies(rows: list[Row], copies: int, offset: int, name: str) -> Iterator[Row]:
    """Meter i (1-based) replays rows[(i-1)*offset:], all meters advancing together."""
    if copies <= 1:
        yield from rows
        return
    length = len(rows) - (copies - 1) * offset
    if length <= 0:
        raise ReplayError(
            f"--copies {copies} with --offset {offset} needs more than {len(rows)} rows"
        )
    for k in range(length):
        for i in range(copies):
            r = rows[i * offset + k]
            yield Row(f"{name}-{i + 1}", r.ts, r.values)


def encode(row: Row, fmt: str, features: list[str]) -> bytes:
    if fmt == "csv":
        return (repr(row.ts) + "," + ",".join(repr(row.values[c]) for c in features)).encode()
    if fmt == "senml":
        recs: list[dict[str, object]] = [{"bn": f"{row.stream}/", "bt": row.ts}]
        recs[0].update(n=features[0], v=row.values[features[0]])
        recs += [{"n": c, "v": row.values[c]} for c in features[1:]]
        return json.dumps(recs).encode()
    return json.dumps({"ts": row.ts, **row.values}).encode()


def add_replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", type=Path, help="CSV file with a time column and feature columns")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--stream", default="meter-1", help="stream name for every row (meter-1)")
    who.add_argument("--stream-col", help="column that names each row's stream")
    p.add_argument(
        "--copies", type=int, default=1, help="replay the series as K meters named STREAM-1..K"
    )
    p.add_argument(
        "--offset", type=int, default=48, help="rows between consecutive copies' starts (48)"
    )
    p.add_argument("--time-col", help="time column (default: ts, time, timestamp, ...)")
    p.add_argument(
        "--features", help="comma-separated columns to send (default: every numeric column)"
    )
    p.add_argument("--start", type=int, default=0, help="skip this many data rows first")
    p.add_argument(
        "--limit", type=int, help="send at most this many rows (per file, before copies)"
    )
    p.add_argument(
        "--rate", type=float, default=10.0, help="messages per second; 0 = as fast as possible (10)"
    )
    p.add_argument(
        "--format", choices=["json", "csv", "senml"], default="json", help="payload format (json)"
    )
    p.add_argument(
        "--topic", default="sensors/{stream}/data", help="topic template (sensors/{stream}/data)"
    )
    p.add_argument(
        "--qos", type=int, choices=[0, 1, 2], default=1, help="QoS of the published messages (1)"
    )
    add_broker_args(p)


def add_broker_args(p: argparse.ArgumentParser) -> None:
    """The broker connection options (the daemon's [mqtt] settings); read by `connection_options`.

    Shared by every tool that talks to the broker (`replay`, `seqcast-deploy push` and `status`).
    """
    mqtt = p.add_argument_group(
        "broker connection", "the settings of the daemon's [mqtt] section, as options"
    )
    mqtt.add_argument("--host", default="localhost", help="broker host (localhost)")
    mqtt.add_argument("--port", type=int, default=1883, help="broker port (1883)")
    mqtt.add_argument("--username", metavar="USER", help="broker user name")
    mqtt.add_argument(
        "--password-file",
        metavar="FILE",
        type=Path,
        help="read the password from FILE (one trailing newline is stripped); only its owner may "
        "read it (chmod 600). There is no option for the password itself: it would show in `ps`",
    )
    mqtt.add_argument(
        "--tls", action="store_true", help="connect with TLS (implied by any of the files below)"
    )
    mqtt.add_argument(
        "--ca-file",
        metavar="FILE",
        type=Path,
        help="CA bundle (PEM) to verify the broker with (default: the system store)",
    )
    mqtt.add_argument("--cert-file", metavar="FILE", type=Path, help="client certificate (PEM)")
    mqtt.add_argument("--key-file", metavar="FILE", type=Path, help="client private key (PEM)")
    mqtt.add_argument(
        "--insecure",
        action="store_true",
        help="with TLS, do not check the broker's host name (its certificate is still verified; "
        "testing only)",
    )
    mqtt.add_argument(
        "--connect-timeout",
        metavar="S",
        type=float,
        default=CONNECT_TIMEOUT_S,
        help=f"give up when the broker has not accepted the connection within S seconds "
        f"({CONNECT_TIMEOUT_S:g})",
    )


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """`Publisher` keyword arguments from the broker options; reads the password file.

    Everything here fails before connecting, with a `ReplayError` naming the option.
    """
    from seqcast.edge.config import ConfigError, MqttConfig, read_password

    if args.password_file is not None and args.username is None:
        raise ReplayError("--password-file needs --username")
    if (args.cert_file is None) != (args.key_file is None):
        raise ReplayError("--cert-file and --key-file must be given together")
    files = {"ca_file": args.ca_file, "cert_file": args.cert_file, "key_file": args.key_file}
    tls = args.tls or any(f is not None for f in files.values())
    for name, path in files.items():
        if path is not None:  # a missing file is named here; paho's error would not name it
            try:
                path.open("rb").close()
            except OSError as e:
                option = "--" + name.replace("_", "-")
                raise ReplayError(f"{option} {path}: {e.strerror or type(e).__name__}") from None
    if args.insecure and not tls:
        raise ReplayError("--insecure only applies to TLS: add --tls or --ca-file")
    if args.connect_timeout <= 0:
        raise ReplayError(f"--connect-timeout must be > 0, got {args.connect_timeout:g}")
    try:  # the daemon's reader: mode check, size limit, one trailing newline stripped
        # environ={}: a relative name is relative to the working directory, as on any command line
        cfg = MqttConfig(username=args.username, password_file=args.password_file)
        password = read_password(cfg, environ={})
    except ConfigError as e:
        raise ReplayError(str(e).replace("mqtt.password_file: ", "--password-file ", 1)) from None
    return {
        "username": args.username,
        "password": password,
        "tls": tls,
        "insecure": args.insecure,
        "connect_timeout": args.connect_timeout,
        **files,
    }


def replay(args: argparse.Namespace) -> int:
    from seqcast.edge.config import TopicTemplate
    from seqcast.tools.clients import Publisher

    template = TopicTemplate(args.topic)
    options = connection_options(args)
    features, rows = read_rows(
        args.csv,
        time_col=args.time_col,
        features=args.features.split(",") if args.features else None,
        stream=args.stream,
        stream_col=args.stream_col,
        start=args.start,
        limit=args.limit,
    )
    try:
        pub = Publisher(args.host, args.port, client_id=None, **options)
    except ConnectionError as e:
        hint = ""
        if any(r in str(e) for r in AUTH_REFUSALS):
            hint = " (check --username and --password-file)"
        raise ReplayError(f"{e}{hint}") from None
    sent = 0
    t0 = time.monotonic()
    try:
        for row in interleave_copies(rows, args.copies, args.offset, args.stream):
            pub.publish(
                template.topic_for(row.stream), encode(row, args.format, features), args.qos
            )
            sent += 1
            if args.rate > 0:
                delay = t0 + sent / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    finally:
        pub.close(timeout=30.0)
    elapsed = time.monotonic() - t0
    log.info(
        "replayed %d messages in %.1f s (%.0f msg/s)", sent, elapsed, sent / max(elapsed, 1e-9)
    )
    return sent


def replay_main(args: argparse.Namespace) -> int:
    try:
        replay(args)
    except (ReplayError, ConnectionError) as e:  # ConnectionError: the broker went away
        print(f"seqcast-edge replay: error: {e}", file=sys.stderr)
        return 2
    return 0
