"""Exploring interleavings: every order of a scenario's steps that can matter, and outcomes."""

from __future__ import annotations

from ._results import Exploration, Interleaving, Outcome, OutcomeGroup
from ._scenario import Scenario, ScenarioSession

__all__ = ["Exploration", "Interleaving", "Outcome", "OutcomeGroup", "Scenario", "ScenarioSession"]
