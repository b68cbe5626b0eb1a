"""Shared fixtures of the test suite live in tests/fix_*.py and are loaded here."""

pytest_plugins = ["fix_messages", "fix_installs", "fix_index", "fix_inner"]
pytest_plugins += ["fix_sessions", "fix_conformance"]
