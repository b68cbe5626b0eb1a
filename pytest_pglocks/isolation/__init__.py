"""PostgreSQL isolation-tester specs: parser, runner and expected outputs (CLI, pytest, API)."""

from __future__ import annotations

from ._expected import compare, expected_files
from ._runner import (
    PermutationOutcome,
    SpecOutcome,
    SpecRunner,
    StepFact,
    max_step_wait,
    run_spec,
)
from ._schedule import read_schedule
from ._spec import Spec, SpecError, parse, parse_file

__all__ = [
    "PermutationOutcome",
    "Spec",
    "SpecError",
    "SpecOutcome",
    "SpecRunner",
    "StepFact",
    "compare",
    "expected_files",
    "max_step_wait",
    "parse",
    "parse_file",
    "read_schedule",
    "run_spec",
]
