"""The `/v1/api-keys` resource: tenant admins create, list and revoke API keys.

The keys themselves (hashing, lookup, cache) are `causeflow.auth.apikeys`.
"""
