"""Sub-commands beyond `inspect`: run, check, replay, demo (registered as they land)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    return None
