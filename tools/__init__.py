"""Simulator and demo tooling (replay, demo, a local mosquitto, small MQTT clients): not needed
on a device; `demo` needs the train extra."""
