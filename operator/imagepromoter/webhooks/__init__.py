"""Webhook receivers: pure payload parsers per sender family, authentication, guards, routing.

Everything here but `receiver` (the aiohttp server) is pure and in the import-linter contract.
"""
