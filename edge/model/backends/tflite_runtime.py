"""`tflite-runtime` (frozen at 2.14, needs numpy<2): older devices; can't load newer ops."""

from seqcast.edge.model.backends.base import InterpreterClass

KEY = "tflite_runtime"


def load_interpreter_class() -> InterpreterClass:
    from tflite_runtime.interpreter import Interpreter

    return Interpreter  # type: ignore[no-any-return]
