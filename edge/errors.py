"""The errors a user can cause and fix (bad config, bundle, missing backend): one line each."""

from seqcast.edge.config import ConfigError
from seqcast.edge.model.backends import NoBackendError
from seqcast.edge.model.backends.base import ModelLoadError
from seqcast.edge.model.bundle import BundleError
from seqcast.edge.model.runtime import SelfTestError
from seqcast.edge.service.replica import ReplicaError

USER_ERRORS: tuple[type[Exception], ...] = (
    BundleError,
    ConfigError,
    NoBackendError,
    ModelLoadError,
    SelfTestError,
    ReplicaError,  # `[state] replicate`: NATS unreachable at start, or nats-py missing
)
