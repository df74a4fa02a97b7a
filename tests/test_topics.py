"""TopicTemplate (config): validation, subscription filters and stream <-> topic mapping."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from seqcast.edge.config import TopicTemplate

# -- TopicTemplate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "subscription"),
    [
        ("sensors/{stream}/data", "sensors/+/data"),
        ("{stream}", "+"),
        ("{stream}/x", "+/x"),
        ("a/b/c/{stream}", "a/b/c/+"),
        ("plant 1/{stream}/ünïcode", "plant 1/+/ünïcode"),
    ],
)
def test_template_subscription(template: str, subscription: str) -> None:
    assert TopicTemplate(template).subscription() == subscription


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("", "non-empty"),
        ("sensors/data", "exactly once"),
        ("{stream}/{stream}", "exactly once"),
        ("sensors/+/data", "wildcard"),
        ("sensors/{stream}/#", "wildcard"),
        ("sensors/x{stream}/data", "whole topic level"),
        ("sensors/{stream}/{other}", "unknown placeholder"),
        ("sensors/{stream", "unbalanced"),
        ("/sensors/{stream}", "empty"),
        ("sensors/{stream}/", "empty"),
        ("sensors//{stream}", "empty"),
        ("$SYS/{stream}", r"\$"),
        ("a\x00/{stream}", "NUL"),
    ],
)
def test_template_rejects(template: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TopicTemplate(template)


def test_template_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        TopicTemplate(None)  # type: ignore[arg-type]


def test_stream_of_and_topic_for() -> None:
    t = TopicTemplate("sensors/{stream}/data")
    assert t.stream_of("sensors/meter-7/data") == "meter-7"
    assert t.topic_for("meter-7") == "sensors/meter-7/data"
    for other in [
        "sensors/meter-7",
        "sensors/meter-7/data/x",
        "other/meter-7/data",
        "sensors//data",
    ]:
        assert t.stream_of(other) is None, other
    assert TopicTemplate("{stream}/x").stream_of("$SYS/x") is None
    for bad in ["", "a/b", "a+", "#", "x\x00"]:
        with pytest.raises(ValueError, match="stream name"):
            t.topic_for(bad)
    with pytest.raises(ValueError, match=r"\$"):
        TopicTemplate("{stream}/x").topic_for("$SYS")
    assert TopicTemplate("a/{stream}").topic_for("$ok") == "a/$ok"


def test_template_is_a_frozen_value() -> None:
    a, b = TopicTemplate("s/{stream}"), TopicTemplate("s/{stream}")
    assert a == b and hash(a) == hash(b) and str(a) == "s/{stream}"
    with pytest.raises(AttributeError):
        a.template = "x/{stream}"  # type: ignore[misc]


_stream_names = st.text(st.characters(codec="utf-8", exclude_characters="/+#\x00"), min_size=1)
_levels = st.sampled_from(["sensors", "data", "a", "b c", "ü", "x-1"])
_templates = st.builds(
    lambda before, after: "/".join([*before, "{stream}", *after]),
    st.lists(_levels, max_size=3),
    st.lists(_levels, max_size=3),
)


@given(_templates, _stream_names)
def test_topic_for_then_stream_of_round_trips(template: str, stream: str) -> None:
    t = TopicTemplate(template)
    if template.startswith("{stream}") and stream.startswith("$"):
        return  # a first-level '$' name would be a system topic; rejected by topic_for
    topic = t.topic_for(stream)
    assert t.stream_of(topic) == stream
    assert paho.topic_matches_sub(t.subscription(), topic)


_pieces = st.sampled_from(["a", "/", "+", "#", "{", "}", "{stream}", "stream", "$", " ", ""])


@given(st.lists(_pieces, max_size=12).map("".join))
@hsettings(max_examples=300)
def test_no_template_yields_a_bad_subscription(text: str) -> None:
    try:
        sub = TopicTemplate(text).subscription()
    except ValueError:
        return
    assert "#" not in sub
    assert sub.count("+") == 1
    assert "+" in sub.split("/")
