"""The OCI registry adapter: `client.RegistryClient` reads tags, digests and creation times.

`auth` answers WWW-Authenticate challenges and caches tokens, `limits` keeps each registry host's
concurrency, request rate and retry timing. docs/registry.md states the rules for users.
"""
