"""Authentication on the local runtime, as API Gateway's JWT authorizer does it on AWS, against a local
issuer whose key pair the runtime keeps on this machine.

The authorizer takes the token from the `Authorization` header (with or without `Bearer `), finds the
signing key in the issuer's JWKS by `kid`, accepts RSA signatures only (never `none`, never HMAC, so a
token "signed" with the public key as an HMAC secret fails), and checks `iss`, `aud` (or Cognito's
`client_id`), `exp`, `nbf` and `iat`. The handler then sees the claims as API Gateway passes them, in
`requestContext.authorizer.jwt`.

The issuer's private key lives in `$IMGFLOW_HOME` (default `~/.imgflow`), so `imgflow token` can sign
for any runtime on this machine and tokens outlive a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

# What `imgflow serve` passes as the template's JwtIssuer and JwtAudience unless told otherwise.
LOCAL_ISSUER = "https://imgflow.local/issuer"
LOCAL_AUDIENCE = "imgflow-local"
# API Gateway's JWT authorizers accept RSA signatures only.
ALGORITHMS = ["RS256", "RS384", "RS512"]
_KEY_FILE = "local-issuer-key.pem"


class UnauthorizedError(Exception):
    """The request carries no valid token: 401, with the reason in `WWW-Authenticate` as API Gateway does."""


def imgflow_home() -> Path:
    return Path(os.environ.get("IMGFLOW_HOME") or Path.home() / ".imgflow")


@dataclass(frozen=True)
class LocalIssuer:
    private_key: rsa.RSAPrivateKey
    issuer: str = LOCAL_ISSUER
    audience: str = LOCAL_AUDIENCE

    @classmethod
    def load(cls, home: Path | None = None) -> LocalIssuer:
        """The machine's local issuer; its key is made on first use, readable by this user only."""
        folder = home or imgflow_home()
        path = folder / _KEY_FILE
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            staged = folder / f".{_KEY_FILE}.{os.getpid()}"
            # Readable by this user only from the moment it exists.
            with os.fdopen(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
                file.write(pem)
            try:
                # Two runtimes starting at once: the first key linked in wins, the other is dropped.
                os.link(staged, path)
            except FileExistsError:
                pass
            finally:
                staged.unlink()
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return cls(loaded)

    @property
    def key_id(self) -> str:
        """The key's RFC 7638 thumbprint, so a new key never reuses an old key's id."""
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
        return jwt.utils.base64url_encode(hashlib.sha256(canonical.encode()).digest()).decode()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [{**jwk, "kid": self.key_id, "alg": "RS256", "use": "sig"}]}

    def token(self, sub: str, scopes: Sequence[str] = (), ttl: int = 3600, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            **({"scope": " ".join(scopes)} if scopes else {}),
            **claims,
        }
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.key_id})


@dataclass(frozen=True)
class JwtAuthorizer:
    """One JWT authorizer of the template: its issuer, its audiences, and the issuer's signing keys."""

    issuer: str
    audiences: tuple[str, ...]
    keys: Mapping[str, Any]  # kid -> public key

    @classmethod
    def for_local_issuer(cls, issuer: LocalIssuer, audiences: Sequence[str]) -> JwtAuthorizer:
        return cls(issuer.issuer, tuple(audiences), {issuer.key_id: issuer.private_key.public_key()})

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, or UnauthorizedError saying why not."""
        if not authorization:
            raise UnauthorizedError("no token: send Authorization: Bearer <token>")
        # API Gateway takes the token with or without its scheme, which RFC 6750 spells in any case.
        scheme, _, rest = authorization.strip().partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" and rest else authorization.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise UnauthorizedError(f"the token is not a JWT: {error}") from error
        if header.get("alg") not in ALGORITHMS:
            raise UnauthorizedError(f"the token's algorithm {header.get('alg')!r} is not accepted")
        key = self.keys.get(str(header.get("kid")))
        if key is None:
            raise UnauthorizedError("the token was not signed by a key of the issuer")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.InvalidTokenError as error:
            raise UnauthorizedError(f"the token is not valid: {error}") from error
        audiences = claims.get("aud", claims.get("client_id"))
        given = {audiences} if isinstance(audiences, str) else set(audiences or ())
        if not given & set(self.audiences):
            raise UnauthorizedError("the token is not meant for this API (aud)")
        return claims


def gateway_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as API Gateway hands them to the integration: every value a string, arrays as `[a b]`."""
    return {
        name: value
        if isinstance(value, str)
        else f"[{' '.join(map(str, value))}]"
        if isinstance(value, list)
        # API Gateway passes numbers and booleans in their JSON spelling.
        else json.dumps(value)
        for name, value in claims.items()
    }


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The token's scopes, from `scope` (a space-separated string) or `scp` (Okta, Azure: a list)."""
    scope = claims.get("scope", claims.get("scp", ""))
    return scope.split() if isinstance(scope, str) else [str(item) for item in scope]
