"""The errors a user can cause and fix (bad config, bundle, missing backend): printed as one line."""

from edge.backends import NoBackendError
from edge.backends.base import ModelLoadError
from edge.bundle import BundleError
from edge.config import ConfigError
from edge.runtime import SelfTestError

USER_ERRORS: tuple[type[Exception], ...] = (
    BundleError,
    ConfigError,
    NoBackendError,
    ModelLoadError,
    SelfTestError,
)
