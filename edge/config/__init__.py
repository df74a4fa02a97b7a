"""Configuration: `edge.toml` sections (validated once, then handed to their owners), the topic
grammar, and reading the file and its secrets."""

from seqcast.edge.config.base import ConfigError
from seqcast.edge.config.files import (
    dump_default_config,
    load_config,
    parse_config,
    read_password,
)
from seqcast.edge.config.sections import (
    EdgeConfig,
    InputConfig,
    LogConfig,
    ModelConfig,
    MqttConfig,
    OutputConfig,
    StateConfig,
    StatusConfig,
    StreamsConfig,
    TlsConfig,
)
from seqcast.edge.config.services import (
    DeployConfig,
    HomeAssistantConfig,
    MetricsConfig,
    QualityConfig,
)
from seqcast.edge.config.topics import TopicTemplate

__all__ = [
    "ConfigError",
    "DeployConfig",
    "MetricsConfig",
    "EdgeConfig",
    "HomeAssistantConfig",
    "InputConfig",
    "LogConfig",
    "ModelConfig",
    "MqttConfig",
    "OutputConfig",
    "QualityConfig",
    "StateConfig",
    "StatusConfig",
    "StreamsConfig",
    "TlsConfig",
    "TopicTemplate",
    "dump_default_config",
    "load_config",
    "parse_config",
    "read_password",
]
