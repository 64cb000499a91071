"""Pytest fixtures for the git servers (see tests/servers/)."""
