"""Shared test configuration. Server fixtures live in tests/integration/conftest.py, so
`pytest tests/unit` imports and starts nothing."""
