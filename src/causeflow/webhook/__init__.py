"""Outbound webhooks: signing, retry policy, SSRF vetting and the HTTP sender."""
