"""LiteRT (`ai-edge-litert`): Google's current interpreter package, aarch64 wheels, no TF."""

from seqcast.edge.model.backends.base import InterpreterClass

KEY = "litert"


def load_interpreter_class() -> InterpreterClass:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter  # type: ignore[no-any-return]
