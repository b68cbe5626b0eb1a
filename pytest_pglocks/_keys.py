"""Keys under which pytest-pglocks keeps its state on pytest's config and items."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._context import TestContext
    from ._run import Run
    from .handle import Pglocks

RUN_KEY: pytest.StashKey[Run] = pytest.StashKey()
CALL_FAILED_KEY: pytest.StashKey[bool] = pytest.StashKey()
HANDLE_KEY: pytest.StashKey[Pglocks] = pytest.StashKey()
CONTEXT_KEY: pytest.StashKey[TestContext] = pytest.StashKey()
# The failure message of a test whose server stopped answering (None: it still answers).
OUTAGE_KEY: pytest.StashKey[str | None] = pytest.StashKey()
# user_properties entry of a spec item that wrote its expected output.
WROTE_PROPERTY = "pglocks_wrote_expected"
# user_properties entry naming a picture written by --pglocks-report.
PICTURE_PROPERTY = "pglocks_picture"
