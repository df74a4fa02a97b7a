"""The tiny backend interface: a TFLite model with named inputs/outputs and a dynamic batch.

All three interpreter packages share the `Interpreter` API, so one wrapper serves them all.
Resizing an interpreter costs a full `allocate_tensors`, so each model keeps one interpreter
per power-of-two batch bucket and pads the batch up to it; rows never interact, so padding does
not change the real rows' results.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Interpreter(Protocol):
    def allocate_tensors(self) -> None: ...
    def resize_tensor_input(
        self, input_index: int, tensor_size: Any, strict: bool = ...
    ) -> None: ...
    def set_tensor(self, tensor_index: int, value: np.ndarray) -> None: ...
    def get_tensor(self, tensor_index: int) -> np.ndarray: ...
    def invoke(self) -> None: ...
    def get_signature_list(self) -> dict[str, Any]: ...
    def get_signature_runner(self, signature_key: str | None = ...) -> Any: ...


class InterpreterClass(Protocol):
    def __call__(self, *, model_content: bytes, num_threads: int | None = ...) -> Interpreter: ...


class ModelLoadError(RuntimeError):
    """The interpreter refused the model (unknown op, corrupt flatbuffer, bad signature)."""


MAX_BUCKET = 1024


def batch_bucket(n: int) -> int:
    """Smallest power of two >= n (1, 2, 4, ...)."""
    return 1 << max(0, (n - 1).bit_length())


class _BucketInterpreter:
    """One interpreter sized for a fixed batch, with tensor indices looked up once."""

    def __init__(self, make: Any, batch: int, inputs: dict[str, Any], outputs: dict[str, Any]):
        self.interpreter = make()
        self.batch = batch
        self.in_index = {name: d["index"] for name, d in inputs.items()}
        self.out_index = {name: d["index"] for name, d in outputs.items()}
        for name, d in inputs.items():
            shape = list(d["shape"])
            shape[0] = batch
            self.interpreter.resize_tensor_input(self.in_index[name], shape, strict=False)
        self.interpreter.allocate_tensors()


class TFLiteModel:
    """A model run by name: `run({"x": [B, ...], ...}) -> {"y": [B, ...], ...}` for any B."""

    def __init__(self, interpreter_class: InterpreterClass, content: bytes, num_threads: int = 1):
        def make() -> Interpreter:
            return interpreter_class(model_content=content, num_threads=num_threads)

        try:
            probe = make()
            signatures = probe.get_signature_list()
            if len(signatures) != 1:
                raise ModelLoadError(f"expected one signature, found {sorted(signatures)}")
            runner = probe.get_signature_runner(next(iter(signatures)))
            self._inputs: dict[str, Any] = runner.get_input_details()
            self._outputs: dict[str, Any] = runner.get_output_details()
        except ModelLoadError:
            raise
        except (RuntimeError, ValueError) as e:
            raise ModelLoadError(
                str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            ) from e
        self._make = make
        self._buckets: dict[int, _BucketInterpreter] = {}

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def input_shape(self, name: str) -> tuple[int, ...]:
        """Shape without the batch dimension."""
        return tuple(int(n) for n in self._inputs[name]["shape"][1:])

    def output_shape(self, name: str) -> tuple[int, ...]:
        """Shape without the batch dimension."""
        return tuple(int(n) for n in self._outputs[name]["shape"][1:])

    def _bucket(self, n: int) -> _BucketInterpreter:
        size = batch_bucket(n)
        b = self._buckets.get(size)
        if b is None:
            try:
                b = _BucketInterpreter(self._make, size, self._inputs, self._outputs)
            except (RuntimeError, ValueError) as e:
                raise ModelLoadError(f"cannot prepare batch {size}: {e}") from e
            self._buckets[size] = b
        return b

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(inputs.values())))
        if n > MAX_BUCKET:
            parts = [
                self.run({k: v[i : i + MAX_BUCKET] for k, v in inputs.items()})
                for i in range(0, n, MAX_BUCKET)
            ]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        b = self._buckets.get(n)  # exact-size hit first: no rounding, no padding
        if b is None:
            b = self._bucket(n)
        it = b.interpreter
        set_tensor, in_index = it.set_tensor, b.in_index
        pad = n != b.batch
        for name, value in inputs.items():
            if value.__class__ is not np.ndarray or value.dtype != np.float32:
                value = np.asarray(value, dtype=np.float32)
            if pad:
                padded = np.zeros((b.batch, *value.shape[1:]), dtype=np.float32)
                padded[:n] = value
                value = padded
            set_tensor(in_index[name], value)
        it.invoke()
        # get_tensor copies, so results stay valid after the next invoke.
        get_tensor = it.get_tensor
        if pad:
            return {name: get_tensor(idx)[:n] for name, idx in b.out_index.items()}
        return {name: get_tensor(idx) for name, idx in b.out_index.items()}
