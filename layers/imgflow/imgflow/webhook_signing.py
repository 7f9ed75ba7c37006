"""Standard Webhooks (standardwebhooks.com): the secret format and the signature of a delivery.

A receiver verifies with the `standardwebhooks` library of its language, given the secret `POST /webhooks`
returned: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with the
secret's bytes (base64 after `whsec_`), sent as `webhook-signature: v1,<base64>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
# The specification asks for 24 to 64 bytes of key.
_SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header of one delivery attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def delivery_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "user-agent": "imgflow-webhooks/1",
    }
