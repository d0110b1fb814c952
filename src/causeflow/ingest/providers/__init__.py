"""Inbound alert providers: one pure module per sender, looked up through `registry.PROVIDERS`.

How a caller uses them (the ingest service owns the transaction and the HTTP mapping)::

    provider = get_provider(name)                     # None -> 404 unknown_provider
    signed = provider.verify(headers, body, secrets)  # InvalidSignature -> 401 invalid_signature
    parsed = provider.parse(headers, body)            # InvalidPayload -> 400 invalid_payload
    if parsed.sns is not None:                        # CloudWatch through SNS
        if parsed.sns.must_confirm:
            await confirm_subscription(parsed.sns.envelope, fetcher, topic_arns)  # verifies first
        else:
            await verify_sns(parsed.sns.envelope, fetcher, topic_arns)
        signed = True
    if tenant.require_signature and provider.signs and not signed:
        ...  # 401 invalid_signature: unsigned request from a sender that can sign

Both SNS calls take optional `now=` and `max_age_seconds=` to bound the age of the signed
Timestamp (replay protection beyond the 24 h delivery-id window).

`Provider.verify` is synchronous and checks the HMAC headers only; a provider whose sender signs
with something that needs network I/O (SNS's RSA certificates) hands the work to the caller
through `ParsedPayload.sns`. This package imports nothing at
import time, so `causeflow.ingest.sns` and the providers can import each other's modules freely.
"""
