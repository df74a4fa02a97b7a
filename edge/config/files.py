"""Reading `edge.toml` and secrets; the commented example config.

`parse_config` validates parsed TOML against the sections (one error line per problem, like
``edge.toml: mqtt.port: must be 1..65535, got 70000``) and fills an unset or empty
`mqtt.client_id` with `default_client_id()`, so every consumer sees the concrete id;
`read_password` is the one function that touches a secret.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from seqcast.edge.config.base import ConfigError
from seqcast.edge.config.sections import EdgeConfig, MqttConfig
from seqcast.edge.config.validation import build, rule_text, show

MAX_PASSWORD_BYTES = 65536
MAX_CLIENT_ID = 128  # the `mqtt.client_id` rule in sections.py
CLIENT_ID_PREFIX = "seqcast-"


def default_client_id(hostname: str | None = None) -> str:
    """``seqcast-<host>``: the first label of the host name, lowercased, every character outside
    ``[a-z0-9_-]`` replaced by ``-``, cut to the 128-character client id rule. Two devices with
    the same host name still share it: give them different host names or `mqtt.client_id`s."""
    name = socket.gethostname() if hostname is None else hostname
    label = re.sub(r"[^a-z0-9_-]", "-", name.split(".", 1)[0].lower()).strip("-")
    return (CLIENT_ID_PREFIX + (label or "edge"))[:MAX_CLIENT_ID]


def _with_client_id(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with an unset or empty `mqtt.client_id` filled in, so the rules see the real id."""
    mqtt = data.get("mqtt", {})
    if not isinstance(mqtt, Mapping) or mqtt.get("client_id", "") != "":
        return dict(data)  # a wrong type is reported by the validator
    return {**data, "mqtt": {**mqtt, "client_id": default_client_id()}}


def _with_partition(data: Mapping[str, Any], partition: str | None) -> Mapping[str, Any]:
    """`data` with `input.partition` set to `partition` (the command line's), unless None."""
    inp = data.get("input", {})
    if partition is None or not isinstance(inp, Mapping):  # a wrong type: the validator says so
        return data
    return {**data, "input": {**inp, "partition": partition}}


def parse_config(
    data: Mapping[str, Any], source: str = "<config>", partition: str | None = None
) -> EdgeConfig:
    """Validate parsed TOML; raise `ConfigError` listing every problem as 'source: key: rule'.

    An unset or empty `mqtt.client_id` becomes `default_client_id()`. `partition` (from
    `--partition`) overrides `input.partition`; the result is `EdgeConfig.resolved()`: with a
    partition, `{partition}` is filled in and the state directory is the partition's."""
    errors: list[str] = []
    cfg = build(EdgeConfig, _with_client_id(_with_partition(data, partition)), "", errors)
    if errors or not isinstance(cfg, EdgeConfig):
        raise ConfigError([f"{source}: {e}" for e in errors])
    return cfg.resolved()


def load_config(path: str | os.PathLike[str], partition: str | None = None) -> EdgeConfig:
    """Read and validate a TOML file; every failure (missing file, syntax) is one `ConfigError`.
    `partition` overrides the file's `input.partition` (`seqcast-edge run --partition`)."""
    source = os.fspath(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except OSError as e:
        raise ConfigError(f"{source}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not valid UTF-8 (byte offset {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: TOML syntax error: {e}") from None
    return parse_config(data, source, partition)


def read_password(cfg: MqttConfig, environ: Mapping[str, str] = os.environ) -> str | None:
    """Read `cfg.password_file` (None when unset); one trailing newline is stripped.

    A relative name resolves in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``) when
    that is set, else in the working directory. Outside ``$CREDENTIALS_DIRECTORY`` (whose modes
    are systemd's business) the file must be private to its owner (0600 or 0400): any group or
    other bit is refused. Errors name the file, never its content.
    """
    if cfg.password_file is None:
        return None
    path, creds = cfg.password_file, environ.get("CREDENTIALS_DIRECTORY")
    from_systemd = False
    if creds:
        if not path.is_absolute():
            path = Path(creds) / path
        from_systemd = Path(os.path.normpath(path)).is_relative_to(os.path.normpath(creds))
    where = f"mqtt.password_file: {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{where}: not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077 and not from_systemd:
                raise ConfigError(
                    f"{where}: group or others may access it (mode {mode:04o}); chmod 600 {path}"
                )
            data = os.read(fd, MAX_PASSWORD_BYTES + 1)
        finally:
            os.close(fd)
    except OSError as e:
        raise ConfigError(f"{where}: {e.strerror or type(e).__name__}") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_PASSWORD_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not valid UTF-8") from None
    return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text


# -- the commented example -----------------------------------------------------------------------


def _dump_section(cls: type, prefix: str, out: list[str]) -> None:
    hints = get_type_hints(cls)
    out += ["", f"# {(cls.__doc__ or '').strip().splitlines()[0]}", f"[{prefix}]"]
    nested = []
    for f in fields(cls):
        hint = hints[f.name]
        if is_dataclass(hint):
            nested.append((hint, f"{prefix}.{f.name}"))
            continue
        rule = rule_text(f, hint)
        out.append(f"# {f.metadata['help']}" + (f" ({rule})" if rule else ""))
        if f.default is None or f.default == ():
            example = f.metadata["example"]  # a list: the array it stands for
            shown = f"[{', '.join(map(show, example))}]" if isinstance(example, list) else None
            out.append(f"# {f.name} = {shown or show(example)}")
        elif f.default is MISSING:
            out.append(f"{f.name} = {show(f.metadata['example'])}  # required")
        else:
            out.append(f"{f.name} = {show(f.default)}")
    for sub, name in nested:
        _dump_section(sub, name, out)  # type: ignore[arg-type]


def dump_default_config() -> str:
    """A commented example `edge.toml` with every key and its default."""
    out = [
        "# seqcast-edge configuration (seqcast-edge check -c FILE validates it).",
        "# Every key is shown with its default; commented keys are unset by default.",
    ]
    for f in fields(EdgeConfig):
        _dump_section(get_type_hints(EdgeConfig)[f.name], f.name, out)
    return "\n".join(out) + "\n"
