"""Run the Terraform root module against a local moto server: shared by the e2e tests.

Hooks for other tests:

- ``applied_farm(tmp_dir, workers_dir=...)`` is a context manager that starts a moto server,
  applies ``infra/terraform`` to it, yields an :class:`AppliedFarm` (endpoint, outputs,
  HEVCQ_* settings, environment for subprocesses) and destroys everything afterwards.
  A parity test compares ``farm.outputs`` / boto3 describe calls with what the embedded
  provisioning creates; a job test points a worker at ``farm.env``.
- ``applied_together(...)`` applies several such farms at once to one moto server (the
  provider spends an apply mostly waiting on its own propagation checks, so two applies
  side by side take about as long as one).
- ``terraform_or_skip()`` returns the binary, skipping unless ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.applicationautoscaling.models import (
    ApplicationAutoscalingBackend,
    FakeApplicationAutoscalingPolicy,
)
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.core.exceptions import JsonRESTError
from moto.server import ThreadedMotoServer

from hevcq.cli.tfconfig import settings_from_outputs
from hevcq.emulator import s3disk
from tests.e2e.farmkit import pool_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_SOURCE = REPO_ROOT / "infra" / "terraform"
WORKERS_DIR = REPO_ROOT / "workers"
REGION = "us-east-1"
# Every service the root module talks to; the provider gets the moto endpoint for each.
TF_SERVICES = (
    "apigatewayv2",
    "applicationautoscaling",
    "cloudwatch",
    "cognitoidp",
    "dynamodb",
    "ecs",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sns",
    "sqs",
    "sts",
)
# An ECR-style URI for the API function: moto stores it and pulls nothing.
API_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hevcq-api:test"
OVERRIDE_FILE = "zz_moto_override.tf"
# moto accepts any credentials; fixed ones keep real profiles out of the test.
MOTO_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def terraform_or_skip() -> str:
    """The terraform binary; skip when it is missing, fail when CI is set."""
    found = shutil.which("terraform")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("terraform is not installed but CI is set")
    pytest.skip("terraform is not installed")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moto_override(endpoint: str) -> str:
    """A provider override pointing every service at ``endpoint`` (test only)."""
    lines = "\n".join(f'    {svc} = "{endpoint}"' for svc in TF_SERVICES)
    return f"""provider "aws" {{
  region                      = "{REGION}"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true

  endpoints {{
{lines}
  }}
}}
"""


def copy_config(dest: Path) -> Path:
    """Copy the Terraform sources (no state, no .terraform) into ``dest``."""
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfplan", ".terraform.lock.hcl")
    shutil.copytree(TF_SOURCE, dest, ignore=ignore)
    return dest


@dataclass
class Terraform:
    """A terraform working directory with a clean, credential-free environment."""

    workdir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment for terraform: no real AWS profile or credentials leak in."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_VAR_"))}
        return {
            **keep,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            **self.extra_env,
        }

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one terraform command; raise with its output when it fails."""
        cmd = [terraform_or_skip(), f"-chdir={self.workdir}", *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def init(self) -> None:
        """``terraform init``, from the local mirror when TF_PLUGIN_DIR is set."""
        plugin_dir = os.environ.get("TF_PLUGIN_DIR")
        flags = [f"-plugin-dir={plugin_dir}"] if plugin_dir else []
        self.run("init", "-input=false", "-backend=false", *flags)

    def var_args(self, variables: Mapping[str, Any]) -> list[str]:
        """Write ``variables`` to a tfvars file and return the flag that loads it."""
        path = self.workdir / "test.auto.tfvars.json"
        path.write_text(json.dumps(dict(variables)), encoding="utf-8")
        return [f"-var-file={path}"]

    def apply(self, variables: Mapping[str, Any]) -> None:
        """``terraform apply`` with ``variables``."""
        self.run("apply", "-auto-approve", "-input=false", *self.var_args(variables))

    def destroy(self, variables: Mapping[str, Any]) -> None:
        """``terraform destroy`` with ``variables``."""
        # No refresh: the state is what this run applied, and reading it back costs time.
        args = ["destroy", "-auto-approve", "-input=false", "-refresh=false"]
        self.run(*args, *self.var_args(variables))

    def plan(self, variables: Mapping[str, Any], *flags: str) -> dict[str, Any]:
        """``terraform plan`` with ``variables``, as ``terraform show -json`` shows it."""
        args = ["plan", "-input=false", "-out=test.tfplan", *flags]
        self.run(*args, *self.var_args(variables))
        return dict(json.loads(self.run("show", "-json", "test.tfplan").stdout))

    def outputs(self) -> dict[str, Any]:
        """``terraform output -json``, parsed."""
        return dict(json.loads(self.run("output", "-json").stdout))


@dataclass(frozen=True)
class AppliedFarm:
    """A farm applied by Terraform to a moto server."""

    endpoint: str
    region: str
    outputs: dict[str, Any]
    settings: dict[str, str]
    terraform: Terraform
    variables: Mapping[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a hevcq process (or boto3) that should use this farm."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **self.settings,
        }

    def allow_plain_http(self) -> None:
        """Drop the bucket's TLS-only policy: moto's endpoint speaks plain HTTP."""
        self.client("s3").delete_bucket_policy(Bucket=self.settings["HEVCQ_BUCKET"])

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` against the moto server."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=self.region,
            **MOTO_CREDENTIALS,
        )


_SCALING_TAGS: dict[str, dict[str, str]] = {}


def _register_with_tags(self: ApplicationAutoScalingResponse) -> str:
    body = _ORIGINAL_REGISTER(self)
    arn = json.loads(body)["ScalableTargetARN"]
    _SCALING_TAGS[arn] = dict(self._get_param("Tags") or {})
    return body


def _list_tags(self: ApplicationAutoScalingResponse) -> str:
    return json.dumps({"Tags": _SCALING_TAGS.get(self._get_param("ResourceARN"), {})})


def _tag_resource(self: ApplicationAutoScalingResponse) -> str:
    _SCALING_TAGS.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags"))
    return "{}"


def _untag_resource(self: ApplicationAutoScalingResponse) -> str:
    tags = _SCALING_TAGS.setdefault(self._get_param("ResourceARN"), {})
    for key in self._get_param("TagKeys") or []:
        tags.pop(key, None)
    return "{}"


_ORIGINAL_REGISTER = ApplicationAutoScalingResponse.register_scalable_target


def patch_moto_scaling_tags() -> None:
    """Add Application Auto Scaling tagging, which moto 5 lacks and the provider reads.

    The server runs in the process that calls this, so patching its response class is
    enough; without
    it the provider retries ListTagsForResource after each scalable target until timeout.
    """
    cls: Any = ApplicationAutoScalingResponse
    cls.register_scalable_target = _register_with_tags
    cls.list_tags_for_resource = _list_tags
    cls.tag_resource = _tag_resource
    cls.untag_resource = _untag_resource


_ORIGINAL_DELETE_POLICY = ApplicationAutoscalingBackend.delete_scaling_policy


def _delete_policy_as_aws(
    self: ApplicationAutoscalingBackend,
    policy_name: str,
    service_namespace: str,
    resource_id: str,
    scalable_dimension: str,
) -> None:
    key = FakeApplicationAutoscalingPolicy.formulate_key(
        service_namespace, resource_id, scalable_dimension, policy_name
    )
    if key not in self.policies:
        raise JsonRESTError("ObjectNotFoundException", f"No scaling policy named {policy_name}")
    _ORIGINAL_DELETE_POLICY(self, policy_name, service_namespace, resource_id, scalable_dimension)


def patch_moto_missing_policy() -> None:
    """Answer DeleteScalingPolicy of a policy that is gone with ObjectNotFoundException,
    as AWS does; moto 5 answers ValidationException.

    The provider treats ObjectNotFoundException on delete as done. Its SDK resends a
    request whose answer it did not get (a slow reply from a loaded server), and the
    resent delete of a policy the first one removed then failed ``terraform destroy``
    with moto's ValidationException.
    """
    cls: Any = ApplicationAutoscalingBackend
    cls.delete_scaling_policy = _delete_policy_as_aws


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's server on 127.0.0.1 and a free port, in a process of its own, stopped on exit.

    Its S3 is the embedded farm's (bytes on disk, ``hevcq.emulator.s3disk``), so the parity test
    proves the events and conditional requests of the store the embedded farm uses. It is not
    in the test process: moto keeps its state in module globals, which any ``mock_aws`` of a
    later test in that process would reset under the farms (their destroy then fails), and
    its S3 adaptation would change what those tests meet.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.tfhelpers", str(port)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        assert ready == "ready", f"the moto server did not start: {ready!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server's signal to stop
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(port: int) -> None:
    """The moto server ``moto_endpoint`` runs: until its standard input closes (the test
    process ended it, or died)."""
    patch_moto_scaling_tags()
    patch_moto_missing_policy()
    s3disk.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


def _network(endpoint: str) -> tuple[list[str], list[str]]:
    """A VPC, subnet and security group in moto for the pools' services."""
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="hevcq-workers", Description="egress", VpcId=vpc)
    return [subnet], [sg["GroupId"]]


def moto_terraform(tmp_dir: Path, endpoint: str) -> Terraform:
    """A copy of the configuration pointed at the moto server ``endpoint``, initialised."""
    work = copy_config(tmp_dir / "terraform")
    (work / OVERRIDE_FILE).write_text(moto_override(endpoint), encoding="utf-8")
    tf = Terraform(work)
    tf.init()
    return tf


def farm_variables(
    name_prefix: str, subnets: list[str], groups: list[str], workers_dir: Path = WORKERS_DIR
) -> dict[str, Any]:
    """The root module's variables for a test farm (API off)."""
    return {
        "region": REGION,
        "name_prefix": name_prefix,
        "workers_dir": str(workers_dir.resolve()),
        "image": "hevcq-worker:test",
        "subnet_ids": subnets,
        "security_group_ids": groups,
        "force_destroy_bucket": True,
    }


@contextmanager
def applied_farm(
    tmp_dir: Path,
    *,
    workers_dir: Path = WORKERS_DIR,
    name_prefix: str = "hevcq",
    endpoint: str | None = None,
    plain_http: bool = True,
    destroy: bool = True,
    api: bool = False,
) -> Iterator[AppliedFarm]:
    """Apply the root module to moto (a new server unless ``endpoint``), destroy on exit.

    The bucket denies requests without TLS and moto serves plain HTTP, so by default the
    bucket policy is removed after the apply; ``plain_http=False`` keeps it. With
    ``destroy=False`` the farm goes with its moto server (``terraform destroy`` is proven
    once, by test_terraform). ``api=True`` also deploys modules/api (Cognito on).
    """
    with moto_endpoint() if endpoint is None else _given(endpoint) as url:
        tf = moto_terraform(tmp_dir, url)
        subnets, groups = _network(url)
        variables = farm_variables(name_prefix, subnets, groups, workers_dir)
        if api:
            variables |= {"api_enabled": True, "api_image": API_IMAGE}
        tf.apply(variables)
        try:
            outputs = tf.outputs()
            farm = AppliedFarm(
                endpoint=url,
                region=REGION,
                outputs=outputs,
                settings=settings_from_outputs(outputs),
                terraform=tf,
                variables=variables,
            )
            if plain_http:
                farm.allow_plain_http()
            yield farm
        finally:
            if destroy:
                tf.destroy(variables)


@contextmanager
def _given(endpoint: str) -> Iterator[str]:
    yield endpoint


@contextmanager
def applied_together(
    farms: Mapping[str, tuple[Path, Mapping[str, Any]]],
) -> Iterator[dict[str, AppliedFarm]]:
    """``applied_farm(tmp_dir, **options)`` for each ``name: (tmp_dir, options)``, applied
    in parallel to one new moto server; each farm is torn down as its options say (in
    reverse order), then the server stops. Prefixes must differ: the farms share the server.
    """
    terraform_or_skip()  # skip (or fail in CI) here, not in a worker thread
    with moto_endpoint() as url, ExitStack() as stack:
        cms: dict[str, AbstractContextManager[AppliedFarm]] = {
            name: applied_farm(tmp, endpoint=url, **options)
            for name, (tmp, options) in farms.items()
        }
        with ThreadPoolExecutor(max_workers=len(cms)) as pool:
            started = {name: pool.submit(cm.__enter__) for name, cm in cms.items()}
        out: dict[str, AppliedFarm] = {}
        for name, future in started.items():
            if future.exception() is None:
                out[name] = future.result()
                stack.push(cms[name])  # tear down only what was set up
        for future in started.values():
            if (error := future.exception()) is not None:
                raise error
        yield out


# The farm test_parity compares with the embedded provisioning: its own prefix, and pool
# files with a queue setting off its default (so a value the files set must reach AWS).
PARITY_PREFIX = "tfp"
PARITY_POOLS = ("hevc", "720p", "1080p")
PARITY_VISIBILITY_TIMEOUT_S = 30


@dataclass(frozen=True)
class TerraformFarms:
    """The applied farms the e2e tests read, on one moto server."""

    full: AppliedFarm  # the root module with the API and the shipped pool files (test_terraform)
    parity: AppliedFarm  # PARITY_PREFIX, from ``parity_workers_dir`` (test_parity)
    parity_workers_dir: Path


@contextmanager
def terraform_farms(tmp_dir: Path) -> Iterator[TerraformFarms]:
    """Both farms, applied side by side. ``full`` keeps its TLS-only bucket policy and is
    destroyed at the end (``terraform destroy`` is proven there); ``parity`` has plain HTTP
    and goes with the server."""
    parity_dir = tmp_dir / "parity"
    wdir = pool_dir(parity_dir, PARITY_POOLS, visibility_timeout_s=PARITY_VISIBILITY_TIMEOUT_S)
    farms: dict[str, tuple[Path, Mapping[str, Any]]] = {
        "full": (tmp_dir / "full", {"plain_http": False, "api": True}),
        "parity": (
            parity_dir,
            {"workers_dir": wdir, "name_prefix": PARITY_PREFIX, "destroy": False},
        ),
    }
    for tmp, _ in farms.values():
        tmp.mkdir(parents=True, exist_ok=True)
    with applied_together(farms) as applied:
        yield TerraformFarms(applied["full"], applied["parity"], wdir)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
