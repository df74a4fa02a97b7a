"""Topic templates: the one grammar of configured topics, and `TopicTemplate` (no paho here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STREAM_FIELD = "{stream}"
PARTITION_FIELD = "{partition}"  # filled from `[input] partition` (seqcast-edge run --partition)
_MAX_TOPIC_BYTES = 65535


def _stream_problem(stream: object, first_level: bool) -> str | None:
    """Why `stream` cannot name a stream in a topic level, or None when it can."""
    if not isinstance(stream, str) or not stream:
        return "must be a non-empty string"
    for bad in ("/", "+", "#", "\x00"):
        if bad in stream:
            return f"must not contain {bad!r}"
    if first_level and stream.startswith("$"):
        return "must not start with '$' in the first topic level (broker system topics)"
    return None


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def template_problem(
    t: object, placeholder: str = "stream", required: bool = True, optional: tuple[str, ...] = ()
) -> str | None:
    """What is wrong with a topic template, or None: the one grammar of every configured topic.

    `{placeholder}` may stand (once, as a whole level) where a name is filled in; with `required`
    it must. Each of `optional` may stand once, as a whole level, too. No other placeholder, no
    wildcard, no empty level, no `$` system prefix.
    """
    if not isinstance(t, str) or not t:
        return "must be a non-empty string"
    if "\x00" in t or len(t.encode("utf-8", "surrogatepass")) > _MAX_TOPIC_BYTES:
        return "must not contain NUL or be longer than 65535 bytes"
    if "+" in t or "#" in t:
        return "must not contain the MQTT wildcards '+' or '#'"
    names, rest = _PLACEHOLDER.findall(t), _PLACEHOLDER.sub("", t)
    if "{" in rest or "}" in rest:
        return "has an unbalanced '{' or '}'"
    if bad := [n for n in names if n != placeholder and n not in optional]:
        allowed = " and ".join(f"{{{n}}}" for n in (placeholder, *optional))
        verb = "are" if optional else "is"
        return f"unknown placeholder {{{bad[0]}}} (only {allowed} {verb} allowed)"
    field = f"{{{placeholder}}}"
    if (required and names.count(placeholder) != 1) or names.count(placeholder) > 1:
        return f"must contain {field} exactly once"
    if extra := [n for n in optional if names.count(n) > 1]:
        return f"must contain {{{extra[0]}}} at most once"
    levels = t.split("/")
    for name in dict.fromkeys(names):  # in order of appearance
        if f"{{{name}}}" not in levels:
            return f"{{{name}}} must fill a whole topic level, like 'a/{{{name}}}/b'"
    if "" in levels:
        return "has an empty level (no leading, trailing or double '/')"
    if t.startswith("$"):
        return "must not start with '$' (broker system topics)"
    return None


def stream_template_rule(value: str) -> str | None:
    """The config rule of an input or output topic: `{stream}` exactly once, `{partition}` at
    most once (filled in from `[input] partition` before anything subscribes or publishes)."""
    return template_problem(value, "stream", required=True, optional=("partition",))


def fill_partition(template: str, partition: str) -> str:
    """`template` with `{partition}` replaced by `partition` (unchanged when it has none)."""
    return template.replace(PARTITION_FIELD, partition)


def status_template_rule(value: str) -> str | None:
    """The config rule of the status topic: `{client_id}` at most once."""
    return template_problem(value, "client_id", required=False)


@dataclass(frozen=True)
class TopicTemplate:
    """A topic with one `{stream}` level, e.g. `sensors/{stream}/data`; checked on construction."""

    template: str
    _levels: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _index: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = template_problem(self.template)
        if problem:
            raise ValueError(f"topic template {self.template!r} {problem}")
        levels = tuple(self.template.split("/"))
        object.__setattr__(self, "_levels", levels)
        object.__setattr__(self, "_index", levels.index(STREAM_FIELD))

    def subscription(self) -> str:
        """The MQTT filter: `sensors/{stream}/data` -> `sensors/+/data`."""
        return "/".join("+" if i == self._index else lv for i, lv in enumerate(self._levels))

    def stream_of(self, topic: str) -> str | None:
        """`sensors/meter-7/data` -> `meter-7`; None when the topic does not match."""
        if not isinstance(topic, str):
            return None
        levels = topic.split("/")
        if len(levels) != len(self._levels):
            return None
        for i, (got, want) in enumerate(zip(levels, self._levels, strict=True)):
            if i != self._index and got != want:
                return None
        stream = levels[self._index]
        return None if _stream_problem(stream, self._index == 0) else stream

    def topic_for(self, stream: str) -> str:
        """`meter-7` -> `sensors/meter-7/data`; ValueError for a name that cannot be one level."""
        problem = _stream_problem(stream, self._index == 0)
        if problem:
            raise ValueError(f"stream name {stream!r} {problem} (topic template {self.template!r})")
        return "/".join(stream if i == self._index else lv for i, lv in enumerate(self._levels))

    def __str__(self) -> str:
        return self.template
