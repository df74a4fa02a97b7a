"""`--predict change`: the network forecasts each target's change from its latest value.

The latest value is read from the step's own input, inside the graph: a target that is also a
feature is, in scaled target units, `x[feature] * scale + offset` (scale = feature std / target
std, offset = (feature mean - target mean) / target std). The graphs add it to the head's
output, so the bundle still outputs levels and the device needs nothing new.

# B: batch  F: inputs  H: horizon  T: targets
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Anchor:
    feature: tuple[int, ...]  # per target: its column in x (0 when it is not a feature)
    scale: tuple[float, ...]  # 0 for a target that is not a feature: its change is its level
    offset: tuple[float, ...]

    def latest(self, x: Any, horizon: int) -> Any:
        """x (..., F) -> each target's latest value, repeated for every step: (..., H*T), in
        the head's layout (step-major)."""
        import keras

        ops = keras.ops
        v = ops.take(x, np.array(self.feature, np.int32), axis=-1)  # (..., T)
        v = v * np.array(self.scale, np.float32) + np.array(self.offset, np.float32)
        return ops.concatenate([v] * horizon, axis=-1)  # (..., H*T)


def anchor_for(
    feature_names: list[str],
    target_names: list[str],
    feature_mean: np.ndarray,
    feature_std: np.ndarray,
    target_mean: np.ndarray,
    target_std: np.ndarray,
) -> Anchor:
    feature, scale, offset = [], [], []
    for j, name in enumerate(target_names):
        if name in feature_names:
            i = feature_names.index(name)
            feature.append(i)
            scale.append(float(feature_std[i] / target_std[j]))
            offset.append(float((feature_mean[i] - target_mean[j]) / target_std[j]))
        else:
            feature.append(0)
            scale.append(0.0)
            offset.append(0.0)
    return Anchor(tuple(feature), tuple(scale), tuple(offset))
