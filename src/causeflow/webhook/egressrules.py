"""A subscription's egress settings at create, patch and read: the client certificate and the
delivery auth, checked, sealed into their columns, and shown without their secrets. Pure apart
from the sealing box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from causeflow.auth.crypto import SecretBox
from causeflow.db.conn import AnyRow
from causeflow.jsonutil import dumps_str, loads
from causeflow.webhook.clienttls import ClientTls, certificate_view, check_client_tls
from causeflow.webhook.deliveryauth import DeliveryAuth, auth_view, check_delivery_auth
from causeflow.webhook.ssrf import IPNetwork


def egress_values(
    changes: dict[str, Any],
    *,
    box: SecretBox,
    allow_http: bool,
    allow: Sequence[IPNetwork],
    now_ms: int,
) -> dict[str, Any]:
    """The sealed columns of the `tls` and `auth` fields present in `changes` (null clears)."""
    values: dict[str, Any] = {}
    if "tls" in changes:
        tls = changes["tls"]
        values["client_tls_enc"] = (
            None
            if tls is None
            else box.seal(
                dumps_str(
                    check_client_tls(
                        tls["clientCertificate"], tls["clientKey"], now_ms=now_ms
                    ).to_json()
                )
            )
        )
    if "auth" in changes:
        auth = changes["auth"]
        values["delivery_auth_enc"] = (
            None
            if auth is None
            else box.seal(
                dumps_str(check_delivery_auth(auth, allow_http=allow_http, allow=allow).to_json())
            )
        )
    return values


def egress_view(row: AnyRow, box: SecretBox) -> dict[str, Any]:
    """`tls` and `auth` as reads show them: no key, token or client secret."""
    tls = ClientTls.from_json(loads(box.open(row.client_tls_enc))) if row.client_tls_enc else None
    auth = (
        DeliveryAuth.from_json(loads(box.open(row.delivery_auth_enc)))
        if row.delivery_auth_enc
        else None
    )
    return {
        "tls": certificate_view(tls) if tls is not None else None,
        "auth": auth_view(auth) if auth is not None else None,
    }
