"""Progress lines on the terminal while pytest captures output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext

import pytest


def progress(config: pytest.Config) -> Callable[[str], None]:
    """Write one line to the terminal now, even from inside a captured fixture, on a line of
    its own (never inside pytest's progress dots); nothing under ``-qq``."""

    def write(line: str) -> None:
        if config.get_verbosity() < -1:
            return
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else nullcontext():
            if reporter is not None and not hasattr(config, "workerinput"):
                reporter.ensure_newline()
                reporter.write_line(line)
            else:  # an xdist worker: its terminal is the controller's, mid-line maybe
                sys.stderr.write("\n" + line + "\n")
                sys.stderr.flush()

    return write
