"""The API's routes that ask for credentials, read from the app itself: a route added
later is in every test that walks them, with no list to keep up to date."""

from __future__ import annotations

from fastapi.routing import APIRoute

from hevcq.web.app import WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator

# Routes any caller may reach: the health names nothing, a play link is its own grant.
OPEN = frozenset({"/api/health"})
# A value of the right shape for each path parameter.
SAMPLE_PARAMS = {"job_id": "0123456789abcdef", "video_id": "01KAAAAAAAAAAAAAAAAAAAAAAA"}


def credentialed_routes() -> list[tuple[str, str]]:
    """(method, path) of every ``/api/`` route but the open ones, parameters filled in."""
    app = create_app(WebConfig(None, Authenticator(AuthConfig(token="t" * 40))))
    found = [
        (method, route.path.format(**SAMPLE_PARAMS))
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/") and route.path not in OPEN
        for method in sorted(route.methods or ())
    ]
    assert len(found) >= 10, found  # the walk found the API, not an empty app
    return found
