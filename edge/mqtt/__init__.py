"""MQTT: the only package in `edge` that imports paho.

- `topics`: topic templates (`sensors/{stream}/data`), checked on construction;
- `link`: the daemon's connection (subscribe, bounded inbox, status, last will, reconnect);
- `simple`: small publisher/subscriber clients for replay, the demo and benchmarks.
"""

from edge.mqtt.link import InboundMessage, LinkCounters, MqttLink, MqttSettings
from edge.mqtt.simple import Publisher, Subscriber
from edge.mqtt.topics import TopicTemplate

__all__ = [
    "InboundMessage",
    "LinkCounters",
    "MqttLink",
    "MqttSettings",
    "Publisher",
    "Subscriber",
    "TopicTemplate",
]
