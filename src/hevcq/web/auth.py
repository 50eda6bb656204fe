"""Who is calling: the run's own token (the embedded farm on loopback), an operator token,
or an OIDC JWT.

Loopback is not a boundary between the users of one machine: any of them can connect to
a port on 127.0.0.1. So even the embedded farm's dashboard asks for a token, one only the
user who started the farm has (``Credentials.dashboard_token``).

Every failure is the same bare 401: the response never says which check failed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import jwt
import structlog

log = structlog.get_logger()

# Owners name where a caller comes from. The embedded farm and the operator token keep the
# bare names their uploads were always filed under; a JWT's owner carries its issuer and
# subject (``jwt_owner``), so no subject can name another caller's uploads.
LOCAL_OWNER = "local"
TOKEN_OWNER = "operator"  # noqa: S105 - an owner name, not a secret
# Leeway for clock skew between the issuer and this server.
JWT_LEEWAY_S = 30
JWT_ALGORITHMS = ["RS256"]


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the owner its uploads are filed under, and whether it operates."""

    owner: str
    operator: bool


@dataclass(frozen=True)
class AuthConfig:
    """How callers prove who they are."""

    # The embedded farm on loopback: whoever shows the run's token is the local operator.
    local_token: str | None = None
    token: str | None = None
    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    operator_group: str = "operators"

    @property
    def local(self) -> bool:
        """True for the embedded farm's own server on a loopback address."""
        return bool(self.local_token)

    @property
    def any_method(self) -> bool:
        """True when some way in is configured."""
        return self.local or bool(self.token) or bool(self.issuer)


def jwt_owner(issuer: str, subject: str) -> str:
    """The owner a JWT's uploads are filed under: its issuer and subject."""
    return f"oidc:{issuer}#{subject}"


def jwt_groups(claims: dict[str, Any]) -> list[str]:
    """``cognito:groups`` or ``groups``, when a list of strings; any other shape grants none
    (``in`` on a string would match any substring of it)."""
    groups = claims.get("cognito:groups") or claims.get("groups") or []
    if isinstance(groups, list) and all(isinstance(g, str) for g in groups):
        return groups
    log.info("jwt_groups_ignored", shape=type(groups).__name__)
    return []


def jwks_url_for(issuer: str) -> str:
    """Where an OIDC issuer (Cognito's layout) publishes its keys."""
    return issuer.rstrip("/") + "/.well-known/jwks.json"


class Authenticator:
    """Maps an Authorization header to a Caller, or None."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._jwks: jwt.PyJWKClient | None = None
        if config.issuer:
            self._jwks = jwt.PyJWKClient(
                config.jwks_url or jwks_url_for(config.issuer), cache_keys=True, lifespan=3600
            )

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller, or None for missing or bad credentials."""
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return None
        local = self.config.local_token
        if local and hmac.compare_digest(credential.encode(), local.encode()):
            return Caller(LOCAL_OWNER, operator=True)
        token = self.config.token
        if token and hmac.compare_digest(credential.encode(), token.encode()):
            return Caller(TOKEN_OWNER, operator=True)
        if self._jwks is not None:
            return self._from_jwt(credential.strip())
        return None

    def _from_jwt(self, credential: str) -> Caller | None:
        if self._jwks is None:
            return None
        try:
            key = self._jwks.get_signing_key_from_jwt(credential)
            claims: dict[str, Any] = jwt.decode(
                credential,
                key.key,
                algorithms=JWT_ALGORITHMS,
                issuer=self.config.issuer,
                leeway=JWT_LEEWAY_S,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            log.info("jwt_rejected", error=type(exc).__name__)
            return None
        if not self._audience_ok(claims):
            log.info("jwt_rejected", error="audience")
            return None
        owner = jwt_owner(str(claims["iss"]), str(claims["sub"]))
        return Caller(owner, operator=self.config.operator_group in jwt_groups(claims))

    def _audience_ok(self, claims: dict[str, Any]) -> bool:
        """``aud`` (ID tokens) or ``client_id`` (Cognito access tokens) names our client."""
        want = self.config.audience
        if not want:
            return False  # the server refuses to start without one; never accept all
        aud = claims.get("aud", claims.get("client_id"))
        return want in aud if isinstance(aud, list) else aud == want
