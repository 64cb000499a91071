"""Images and repositories are the units of work, not CRs; imports no Kopf.

The pieces between the per-CR passes (reconcile) and the adapters that make one scan per image
and one push per repository and branch: index.py (image -> CRs, from the watch), freshness.py (how
fresh each cause needs its scan), batches.py (promotions gathered into one push). No module here
imports kopf, httpx, dulwich or the adapter packages (import-linter); adapters come in as Protocols.
"""
