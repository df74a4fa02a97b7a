"""MQTT: the only package in `edge` that imports paho.

- `link`: the daemon's connection: subscribe, fill the inbox, publish forecasts and status,
  acknowledge inputs once their forecasts are safe (the last will says `offline`);
- `inbox`: the bounded queue from paho's thread to the data path, drained in batches;
- `delivery`: received messages and the acknowledgement gate;
- `client`: the buffered paho client the link runs on (sealed behind the link);
- `diagnose`: why a connection failed, in one line.
"""

from seqcast.edge.mqtt.delivery import InboundMessage
from seqcast.edge.mqtt.link import MqttLink

__all__ = ["InboundMessage", "MqttLink"]
