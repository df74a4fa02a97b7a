"""Topic templates: value objects that check themselves (no paho here)."""

from __future__ import annotations

from dataclasses import dataclass, field

STREAM_FIELD = "{stream}"
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


def _template_problem(t: object) -> str | None:
    """What is wrong with a topic template, or None."""
    if not isinstance(t, str) or not t:
        return "must be a non-empty string"
    if "\x00" in t or len(t.encode("utf-8", "surrogatepass")) > _MAX_TOPIC_BYTES:
        return "contains NUL or is longer than 65535 bytes"
    levels = t.split("/")
    if "" in levels:
        return "has an empty level (no leading, trailing or double '/')"
    if "+" in t or "#" in t:
        return f"has a wildcard '+' or '#'; write {STREAM_FIELD} where the stream name goes"
    if any(lv != STREAM_FIELD and ("{" in lv or "}" in lv) for lv in levels):
        return f"has a placeholder other than {STREAM_FIELD}, which must fill a whole level"
    if (count := levels.count(STREAM_FIELD)) != 1:
        return f"must contain exactly one {STREAM_FIELD} level, found {count}"
    if t.startswith("$"):
        return "must not start with '$' (broker system topics)"
    return None


@dataclass(frozen=True)
class TopicTemplate:
    """A topic with one `{stream}` level, e.g. `sensors/{stream}/data`; checked on construction."""

    template: str
    _levels: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _index: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _template_problem(self.template)
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
