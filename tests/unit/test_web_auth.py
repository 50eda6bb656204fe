import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hevcq.errors import ConfigError
from hevcq.settings import Settings
from hevcq.web.auth import AuthConfig, Authenticator, Caller
from hevcq.web.server import auth_config
from tests.jwtkit import AUDIENCE, ISSUER, Issuer


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[Issuer]:
    i = Issuer(tmp_path)
    yield i
    i.close()


def _auth(issuer: Issuer, **kw: object) -> Authenticator:
    cfg = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": issuer.jwks_url, **kw}
    return Authenticator(AuthConfig(**cfg))  # type: ignore[arg-type]


def test_a_valid_jwt_names_its_subject_and_groups(issuer: Issuer) -> None:
    auth = _auth(issuer)
    assert auth.caller(f"Bearer {issuer.token('alice')}") == Caller("alice", operator=False)
    op = issuer.token("bob", **{"cognito:groups": ["operators"]})
    assert auth.caller(f"Bearer {op}") == Caller("bob", operator=True)


def test_a_cognito_access_token_names_the_client_in_client_id(issuer: Issuer) -> None:
    token = issuer.token("carol", aud=None, client_id=AUDIENCE)
    assert _auth(issuer).caller(f"Bearer {token}") == Caller("carol", operator=False)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},
        {"iss": "https://someone-else.test"},
        {"aud": "another-app"},
        {"sub": None},
    ],
    ids=["expired", "issuer", "audience", "no-subject"],
)
def test_a_jwt_failing_a_check_is_refused(issuer: Issuer, claims: dict[str, Any]) -> None:
    token = issuer.token(**claims)
    assert _auth(issuer).caller(f"Bearer {token}") is None


def test_a_jwt_signed_by_another_key_is_refused(issuer: Issuer, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    forger = Issuer(tmp_path / "other", kid=issuer.kid)
    forger.close()
    assert _auth(issuer).caller(f"Bearer {forger.token('alice')}") is None


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Basic abc", "Bearer wrong", "Bearer x.y.z"]
)
def test_missing_or_bad_credentials_are_refused(issuer: Issuer, header: str | None) -> None:
    assert _auth(issuer, token="s3cret").caller(header) is None


def test_the_operator_token_is_accepted() -> None:
    auth = Authenticator(AuthConfig(token="s3cret"))
    assert auth.caller("Bearer s3cret") == Caller("operator", operator=True)
    assert auth.caller("Bearer s3cre") is None


def test_the_open_local_mode_needs_nothing() -> None:
    assert Authenticator(AuthConfig(open_local=True)).caller(None) == Caller("local", True)


@pytest.mark.parametrize(
    ("embedded", "host", "token", "open_local"),
    [
        (True, "127.0.0.1", None, True),
        (True, "localhost", None, True),
        (True, "::1", None, True),
        (True, "127.0.0.1", "t" * 40, False),  # a token set: it is asked for
        (True, "0.0.0.0", "t" * 40, False),  # noqa: S104 - beyond loopback: credentials
        (False, "127.0.0.1", "t" * 40, False),  # a configured farm: credentials
    ],
)
def test_only_the_embedded_farm_on_loopback_is_open(
    embedded: bool, host: str, token: str | None, open_local: bool
) -> None:
    cfg = auth_config(Settings(api_token=token), embedded=embedded, host=host)
    assert cfg.open_local is open_local
    assert Authenticator(cfg).caller(None) == (Caller("local", True) if open_local else None)


@pytest.mark.parametrize(("embedded", "host"), [(True, "0.0.0.0"), (False, "127.0.0.1")])  # noqa: S104
def test_without_credentials_the_server_refuses_to_start_off_loopback_or_on_a_farm(
    embedded: bool, host: str
) -> None:
    with pytest.raises(ConfigError, match="HEVCQ_API_TOKEN or HEVCQ_OIDC_ISSUER"):
        auth_config(Settings(), embedded=embedded, host=host)
