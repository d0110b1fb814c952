"""Inbound alerts: provider webhooks in, normalized alerts out.

`providers/` holds one pure parser per sender plus an explicit registry, `sns.py` verifies and
confirms Amazon SNS envelopes (the only part that does network I/O), and `fingerprint.py` holds
the pure helpers that derive stable alert keys.
"""
