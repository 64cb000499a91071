"""Pytest fixtures for the registry servers (see tests/servers/)."""
