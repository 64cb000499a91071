"""The OCI registry adapter: `client.RegistryClient` reads tags, digests and creation times.

`client` is the facade; `transport` (httpx, scheme, bodies, retries), `session` (the auth flow,
redirects), `paging` (tag lists and their bounds), `lookups` (digests, creation times) and
`messages` (every error's wording) sit behind it, on `auth` (challenges, tokens) and `limits`
(per-host concurrency and rate, backoff, deadlines). docs/registry.md states the rules for users.
"""
