"""The errors a user can cause and fix (bad config, bundle, missing backend): printed as one line."""

from edge.backends import NoBackendError
from edge.backends.base import ModelLoadError
from edge.bundle import BundleError
from edge.runtime import SelfTestError

USER_ERRORS: tuple[type[Exception], ...] = (BundleError, NoBackendError, ModelLoadError, SelfTestError)

try:  # the config module is optional until the daemon is wired in
    from edge.config import ConfigError

    USER_ERRORS += (ConfigError,)
except ImportError:  # pragma: no cover
    pass
