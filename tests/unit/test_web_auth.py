import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hevcq.credentials import Credentials
from hevcq.errors import ConfigError
from hevcq.settings import Settings
from hevcq.web.auth import LOCAL_OWNER, TOKEN_OWNER, AuthConfig, Authenticator, Caller, jwt_owner
from hevcq.web.server import auth_config
from tests.jwtkit import AUDIENCE, ISSUER, Issuer

TOKEN = "t" * 40


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
    alice = Caller(jwt_owner(ISSUER, "alice"), operator=False)
    assert auth.caller(f"Bearer {issuer.token('alice')}") == alice
    op = issuer.token("bob", **{"cognito:groups": ["operators"]})
    assert auth.caller(f"Bearer {op}") == Caller(jwt_owner(ISSUER, "bob"), operator=True)


def test_a_cognito_access_token_names_the_client_in_client_id(issuer: Issuer) -> None:
    token = issuer.token("carol", aud=None, client_id=AUDIENCE)
    assert _auth(issuer).caller(f"Bearer {token}") == Caller(jwt_owner(ISSUER, "carol"), False)


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


LOCAL_TOKEN = "l" * 32


@pytest.mark.parametrize(
    ("header", "caller"),
    [
        (f"Bearer {LOCAL_TOKEN}", Caller("local", True)),
        (f"bearer {LOCAL_TOKEN}", Caller("local", True)),
        (None, None),  # another user of the machine, who cannot read the farm file
        ("Bearer ", None),
        (f"Bearer {LOCAL_TOKEN[:-1]}", None),
        (f"Bearer {LOCAL_TOKEN}x", None),
        (f"Basic {LOCAL_TOKEN}", None),
    ],
)
def test_the_local_server_asks_for_the_run_s_token(header: str | None, caller: Caller) -> None:
    """The embedded farm's server on loopback let every caller in: any user of the machine
    can connect to 127.0.0.1."""
    assert Authenticator(AuthConfig(local_token=LOCAL_TOKEN)).caller(header) == caller


@pytest.mark.parametrize(
    ("embedded", "host", "token", "local"),
    [
        (True, "127.0.0.1", None, True),
        (True, "localhost", None, True),
        (True, "::1", None, True),
        (True, "127.0.0.1", "t" * 40, False),  # a token set: it is asked for
        (True, "0.0.0.0", "t" * 40, False),  # noqa: S104 - beyond loopback: credentials
        (False, "127.0.0.1", "t" * 40, False),  # a configured farm: credentials
    ],
)
def test_only_the_embedded_farm_on_loopback_takes_the_run_s_token(
    embedded: bool, host: str, token: str | None, local: bool
) -> None:
    cfg = auth_config(
        Settings(api_token=token), embedded=embedded, host=host, local_token=LOCAL_TOKEN
    )
    assert cfg.local is local
    assert cfg.local_token == (LOCAL_TOKEN if local else None)
    run = Authenticator(cfg).caller(f"Bearer {LOCAL_TOKEN}")
    assert run == (Caller("local", True) if local else None)
    assert Authenticator(cfg).caller(None) is None


def test_a_local_server_with_no_farm_running_still_asks_for_a_token() -> None:
    """``hevcq serve`` before any ingest: nothing to read but the health, and a random
    token nobody was given."""
    cfg = auth_config(Settings(), embedded=True, host="127.0.0.1")
    assert cfg.local_token
    assert len(cfg.local_token) == 32
    assert auth_config(Settings(), embedded=True, host="127.0.0.1").local_token != cfg.local_token
    assert Authenticator(cfg).caller(None) is None


def test_the_run_s_token_comes_from_its_secret() -> None:
    """Every server of one farm asks for the same token; another run's does not pass."""
    one = Credentials("HEVCQAAAAAAAAAAAAAAA", "s" * 40)
    assert one.dashboard_token() == Credentials("HEVCQBBBBBBBBBBBBBBB", "s" * 40).dashboard_token()
    assert one.dashboard_token() != Credentials.generate().dashboard_token()
    assert len(one.dashboard_token()) == 32
    assert "s" * 8 not in one.dashboard_token()


@pytest.mark.parametrize(("embedded", "host"), [(True, "0.0.0.0"), (False, "127.0.0.1")])  # noqa: S104
def test_without_credentials_the_server_refuses_to_start_off_loopback_or_on_a_farm(
    embedded: bool, host: str
) -> None:
    with pytest.raises(ConfigError, match="HEVCQ_API_TOKEN or HEVCQ_OIDC_ISSUER"):
        auth_config(Settings(), embedded=embedded, host=host)


def test_without_an_audience_an_oidc_server_refuses_to_start() -> None:
    """Every token the issuer signs, for any of its apps, would otherwise be accepted."""
    with pytest.raises(ConfigError, match="HEVCQ_OIDC_AUDIENCE"):
        auth_config(Settings(oidc_issuer=ISSUER), embedded=False, host="127.0.0.1")


def test_a_token_of_another_app_of_the_issuer_is_refused_even_unconfigured(
    issuer: Issuer,
) -> None:
    token = issuer.token("alice", aud="another-app")
    assert _auth(issuer, audience=None).caller(f"Bearer {token}") is None


@pytest.mark.parametrize(
    "groups",
    ["operators-not", "xoperatorsx", "operators", {"operators": 1}, [["operators"]], [1]],
)
def test_a_groups_claim_that_is_not_a_list_of_strings_grants_no_group(
    issuer: Issuer, groups: object
) -> None:
    """A string was matched by substring: ``"xoperatorsx"`` made its bearer an operator."""
    for claim in ("groups", "cognito:groups"):
        token = issuer.token("mallory", **{claim: groups})
        who = _auth(issuer).caller(f"Bearer {token}")
        assert who is not None
        assert who.operator is False


def test_a_jwt_subject_never_shares_an_owner_with_the_token_or_the_local_farm(
    issuer: Issuer,
) -> None:
    auth = _auth(issuer, token=TOKEN)
    token_owner = auth.caller(f"Bearer {TOKEN}")
    assert token_owner == Caller(TOKEN_OWNER, operator=True)
    for sub in (TOKEN_OWNER, LOCAL_OWNER):
        who = auth.caller(f"Bearer {issuer.token(sub)}")
        assert who is not None
        assert who.owner not in (TOKEN_OWNER, LOCAL_OWNER)
        assert who.owner == jwt_owner(ISSUER, sub)


def test_the_same_subject_of_another_issuer_is_another_owner() -> None:
    assert jwt_owner(ISSUER, "alice") != jwt_owner("https://other.test/pool", "alice")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7", "::"])  # noqa: S104
@pytest.mark.parametrize("embedded", [True, False])
def test_a_short_token_is_refused_beyond_loopback(host: str, embedded: bool) -> None:
    with pytest.raises(ConfigError, match="at least 32 characters"):
        auth_config(Settings(api_token="x"), embedded=embedded, host=host)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        auth_config(Settings(api_token="t" * 31), embedded=embedded, host=host)
    assert auth_config(Settings(api_token="t" * 32), embedded=embedded, host=host).token


def test_a_short_token_is_accepted_on_loopback() -> None:
    assert auth_config(Settings(api_token="x"), embedded=False, host="127.0.0.1").token == "x"
