"""Keys under which pytest-pglocks keeps its state on pytest's config and items."""

from __future__ import annotations

import pytest

from ._context import TestContext
from ._run import Run
from .handle import Pglocks

RUN_KEY = pytest.StashKey[Run]()
CALL_FAILED_KEY = pytest.StashKey[bool]()
HANDLE_KEY = pytest.StashKey[Pglocks]()
CONTEXT_KEY = pytest.StashKey[TestContext]()
# The failure message of a test whose server stopped answering (None: it still answers).
OUTAGE_KEY = pytest.StashKey[str | None]()
# user_properties entry of a spec item that wrote its expected output.
WROTE_PROPERTY = "pglocks_wrote_expected"
# user_properties entry naming a picture written by --pglocks-report.
PICTURE_PROPERTY = "pglocks_picture"
