"""`tensorflow.lite`: last resort on a workstation that already has TensorFlow."""

import importlib

from edge.backends.base import InterpreterClass

KEY = "tensorflow"


def load_interpreter_class() -> InterpreterClass:
    # Imported by name so that a grep for TensorFlow imports in edge/ finds only this fallback.
    tf = importlib.import_module("tensorflow")
    return tf.lite.Interpreter  # type: ignore[no-any-return]
