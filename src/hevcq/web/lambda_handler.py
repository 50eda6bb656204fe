"""The API on AWS Lambda: the app of ``hevcq serve`` behind API Gateway, through Mangum.

The image (docker/api.Dockerfile) runs ``awslambdaric`` with ``hevcq.web.lambda_handler.handler``.
Settings come from the function's ``HEVCQ_*`` environment (infra/terraform/modules/api);
the app is built on a container's first request and reused by the requests after it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from mangum import Mangum
from mangum.types import LambdaContext

from hevcq import logs
from hevcq.errors import ConfigError
from hevcq.pools import load_farm
from hevcq.settings import load_settings
from hevcq.web.app import WebConfig, create_app
from hevcq.web.server import auth_config, locate, web_config

log = structlog.get_logger()

# Not a loopback address: the app refuses to start without a token or an OIDC issuer.
LAMBDA_HOST = "0.0.0.0"  # noqa: S104 - names the kind of address for the auth rule, binds nothing
# Lambda's only writable folder; locate() looks there for an embedded farm, never found.
LAMBDA_TMP = Path("/tmp")  # noqa: S108 - read for a farm file only, and none is ever there


def adapter(config: WebConfig) -> Mangum:
    """The app for ``config`` as a Lambda handler.

    No lifespan: Lambda freezes a container between requests, so the raw-deletion sweeper
    thread would not run; with ``HEVCQ_RAW=delete-when-settled`` a source still goes
    when its video is read (``FarmView.video``).
    """
    return Mangum(create_app(config), lifespan="off")


def build(env: Mapping[str, str]) -> tuple[Mangum, bool]:
    """The handler for the farm the settings name, and whether that farm was reachable."""
    settings = load_settings(env)
    logs.configure(settings.log_format, settings.log_level)
    if settings.embedded:
        raise ConfigError("HEVCQ_BUCKET is not set: on Lambda the API serves a configured farm")
    # Before any AWS call: a function deployed without a guard fails at once.
    auth_config(settings, embedded=False, host=LAMBDA_HOST)
    located = locate(settings, load_farm(settings.workers_dir), LAMBDA_TMP)
    if located.farm is None:
        # A queue missing or refused, or AWS failing. The details (ARNs, the account) go to
        # the log only: /api/health answers anyone on the internet.
        log.warning("farm_not_located", reason=located.reason)
    return adapter(web_config(settings, located, LAMBDA_HOST)), located.farm is not None


_CONTAINER: dict[str, Mangum] = {}


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda's entry point: one API Gateway (HTTP API, payload 2.0) request."""
    served = _CONTAINER.get("app")
    if served is None:
        served, reachable = build(os.environ)
        # A farm unreachable at a cold start is looked up again on the next request
        # instead of answering 503 for the container's whole life.
        if reachable:
            _CONTAINER["app"] = served
    return served(event, context)
