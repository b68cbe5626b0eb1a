"""Progress lines on the terminal while pytest captures output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext

import pytest


def progress(config: pytest.Config) -> Callable[[str], None]:
    """Write one line to the terminal now, even from inside a captured fixture."""

    def write(line: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    return write
