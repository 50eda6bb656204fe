"""Terraform checks: formatting, validation, a static scan and an apply against moto."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from hevcq.pools import load_farm
from hevcq.settings import unknown_names
from hevcq.topology import Names
from hevcq.web import lambda_handler, uploads
from hevcq.web.auth import TOKEN_OWNER
from tests.e2e import iamcheck
from tests.e2e.tfhelpers import (
    API_IMAGE,
    REGION,
    REPO_ROOT,
    TF_SOURCE,
    WORKERS_DIR,
    AppliedFarm,
    Terraform,
    TerraformFarms,
    copy_config,
    terraform_or_skip,
)
from tests.unit.test_lambda_handler import Context, _json, http_api_event

# One xdist worker builds the Terraform farms both files read (a session fixture).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("terraform")]

MODULE_DIRS = [TF_SOURCE, *sorted(p for p in (TF_SOURCE / "modules").iterdir() if p.is_dir())]
CHECKOV_CONFIG = TF_SOURCE / ".checkov.yaml"


@pytest.fixture(scope="module")
def terraform() -> str:
    """The terraform binary (skip without it, fail in CI)."""
    return terraform_or_skip()


@pytest.fixture(scope="module")
def initialised(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """A copy of the configuration after ``terraform init``."""
    tf = Terraform(copy_config(tmp_path_factory.mktemp("tf") / "terraform"))
    tf.init()
    return tf


def test_fmt_is_clean(terraform: str) -> None:
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TF_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validate(initialised: Terraform) -> None:
    result = json.loads(initialised.run("validate", "-json").stdout)
    assert result["valid"], result["diagnostics"]
    assert result["error_count"] == 0


@pytest.mark.parametrize("module", MODULE_DIRS, ids=lambda p: p.name)
def test_module_layout(module: Path) -> None:
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module / name).is_file(), f"{module.name}/{name} missing"
    variables = (module / "variables.tf").read_text(encoding="utf-8")
    blocks = re.split(r'^variable "', variables, flags=re.M)[1:]
    assert blocks, f"{module.name} has no variables"
    for block in blocks:
        name = block.split('"', 1)[0]
        assert re.search(r"^\s+type\s+=", block, re.M), f"{module.name}: {name} has no type"
        assert re.search(r"^\s+description\s+=", block, re.M), f"{module.name}: {name} undescribed"
    assert 'version = ">= 5.60, < 6.0"' in (module / "versions.tf").read_text(encoding="utf-8")
    if module != TF_SOURCE:
        sources = "".join(p.read_text(encoding="utf-8") for p in module.glob("*.tf"))
        assert re.search(r'^resource "[a-z0-9_]+" "this"', sources, re.M), module.name


def _checkov() -> str:
    """checkov from the tool venv (``make tools``), then PATH; skip unless CI."""
    candidates = [os.environ.get("CHECKOV"), str(REPO_ROOT / ".venv-tools" / "bin" / "checkov")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("checkov")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("checkov missing: run `make tools`")
    pytest.skip("checkov missing: run `make tools`")


def test_every_checkov_skip_is_justified() -> None:
    config = CHECKOV_CONFIG.read_text(encoding="utf-8")
    skips = [line.strip() for line in config.splitlines() if line.strip().startswith("- CKV")]
    assert skips
    for line in skips:
        assert re.match(r"- CKV2?_AWS_\d+\s+# \S.{10,}", line), f"unjustified skip: {line}"
    for tf_file in TF_SOURCE.rglob("*.tf"):
        for check_id, reason in re.findall(
            r"#checkov:skip=(CKV2?_AWS_\d+):?(.*)", tf_file.read_text(encoding="utf-8")
        ):
            assert len(reason.strip()) > 10, f"{tf_file}: {check_id} skipped without a reason"
            assert check_id in config, f"{check_id} ({tf_file.name}) not listed in .checkov.yaml"


def test_checkov_passes() -> None:
    cmd = [_checkov(), "--directory", str(TF_SOURCE), "--config-file", str(CHECKOV_CONFIG)]
    proc = subprocess.run(
        [*cmd, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sum(r.get("summary", {}).get("passed", 0) for r in reports) > 50


@pytest.fixture(scope="module")
def farm(terraform_farms: TerraformFarms) -> AppliedFarm:
    """The root module with the API, applied to moto (destroyed at the end of the session)."""
    return terraform_farms.full


def _attrs(farm: AppliedFarm, url: str) -> dict[str, str]:
    sqs = farm.client("sqs")
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def test_settings_follow_the_naming_convention(farm: AppliedFarm) -> None:
    pools = load_farm(WORKERS_DIR)
    names = Names.build("hevcq", farm.settings["HEVCQ_BUCKET"], sorted(pools))
    assert farm.settings["HEVCQ_NAME_PREFIX"] == "hevcq"
    assert farm.settings["HEVCQ_LEDGER_TABLE"] == names.ledger_table
    assert farm.settings["HEVCQ_UPLOADS_TOPIC_ARN"].endswith(f":{names.uploads_topic}")
    assert farm.settings["HEVCQ_EVENTS_TOPIC_ARN"].endswith(f":{names.events_topic}")
    assert farm.settings["HEVCQ_RESULTS_QUEUE_URL"].endswith(f"/{names.results_queue}")
    for pool, pn in names.pools.items():
        assert farm.outputs["queue_urls"]["value"][pool].endswith(f"/{pn.queue}")
        assert farm.outputs["dlq_urls"]["value"][pool].endswith(f"/{pn.dlq}")


def test_pool_defaults_match_the_python_models(farm: AppliedFarm) -> None:
    expected = {
        name: {"queue": p.queue.model_dump(), "deploy": p.deploy.model_dump()}
        for name, p in load_farm(WORKERS_DIR).items()
    }
    assert farm.outputs["pools"]["value"] == expected


def test_queues_and_dead_letter_queues(farm: AppliedFarm) -> None:
    for name, pool in load_farm(WORKERS_DIR).items():
        queue = _attrs(farm, farm.outputs["queue_urls"]["value"][name])
        dlq = _attrs(farm, farm.outputs["dlq_urls"]["value"][name])
        redrive = json.loads(queue["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == pool.queue.max_receive_count
        assert int(queue["VisibilityTimeout"]) == pool.queue.visibility_timeout_s
        assert int(queue["MessageRetentionPeriod"]) == pool.queue.retention_s
        assert int(dlq["MessageRetentionPeriod"]) == pool.queue.dlq_retention_s
        assert queue["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"
        policy = json.loads(queue["Policy"])["Statement"][0]
        assert policy["Principal"] == {"Service": "sns.amazonaws.com"}
        assert (
            policy["Condition"]["ArnEquals"]["aws:SourceArn"]
            == (farm.settings["HEVCQ_UPLOADS_TOPIC_ARN"])
        )


def _subscriptions(farm: AppliedFarm, topic_arn: str) -> dict[str, dict[str, str]]:
    sns = farm.client("sns")
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    return {
        s["Endpoint"]: sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])[
            "Attributes"
        ]
        for s in subs
    }


def test_subscriptions_use_raw_delivery(farm: AppliedFarm) -> None:
    uploads = _subscriptions(farm, farm.settings["HEVCQ_UPLOADS_TOPIC_ARN"])
    queue_arns = {
        _attrs(farm, url)["QueueArn"] for url in farm.outputs["queue_urls"]["value"].values()
    }
    assert set(uploads) == queue_arns
    assert all(a["RawMessageDelivery"] == "true" for a in uploads.values())
    results_arn = _attrs(farm, farm.settings["HEVCQ_RESULTS_QUEUE_URL"])["QueueArn"]
    events = _subscriptions(farm, farm.settings["HEVCQ_EVENTS_TOPIC_ARN"])
    assert list(events) == [results_arn]
    assert events[results_arn]["RawMessageDelivery"] == "true"


def test_bucket_notifies_uploads_under_todo(farm: AppliedFarm) -> None:
    s3 = farm.client("s3")
    bucket = farm.settings["HEVCQ_BUCKET"]
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    [topic] = config["TopicConfigurations"]
    assert topic["TopicArn"] == farm.settings["HEVCQ_UPLOADS_TOPIC_ARN"]
    assert topic["Events"] == ["s3:ObjectCreated:*"]
    rules = topic["Filter"]["Key"]["FilterRules"]
    # AWS answers "Prefix", moto "prefix": the rule name is case-insensitive.
    assert [(r["Name"].lower(), r["Value"]) for r in rules] == [("prefix", "TODO/")]

    # The bucket policy refuses requests without TLS, and moto's endpoint is plain HTTP.
    with pytest.raises(ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(Bucket=bucket, Key="TODO/plain-http.mp4", Body=b"x")
    farm.allow_plain_http()
    s3.put_object(Bucket=bucket, Key="DONE/hevc/ignored.mp4", Body=b"x")
    s3.put_object(Bucket=bucket, Key="TODO/shows/a.mp4", Body=b"x")
    for url in farm.outputs["queue_urls"]["value"].values():
        keys = _received_keys(farm, url)
        assert "TODO/shows/a.mp4" in keys
        assert not any(k.startswith("DONE/") for k in keys)


def _received_keys(farm: AppliedFarm, url: str) -> list[str]:
    """Object keys of the S3 events waiting in a queue (raw delivery: the body is the event)."""
    sqs = farm.client("sqs")
    keys: list[str] = []
    for msg in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
        body: dict[str, Any] = json.loads(msg["Body"])
        # S3 event keys are URL-encoded (spaces as "+"), as on AWS.
        keys += [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])]
    return keys


def test_ledger_table(farm: AppliedFarm) -> None:
    ddb = farm.client("dynamodb")
    name = farm.settings["HEVCQ_LEDGER_TABLE"]
    table = ddb.describe_table(TableName=name)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == ("expires_at", "ENABLED")
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_task_definitions_run_the_pool_worker(farm: AppliedFarm) -> None:
    ecs = farm.client("ecs")
    for name, pool in load_farm(WORKERS_DIR).items():
        td = ecs.describe_task_definition(taskDefinition=f"hevcq-{name}")["taskDefinition"]
        [container] = td["containerDefinitions"]
        assert container["entryPoint"] + container["command"] == ["hevcq", "worker", "--pool", name]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert {k: env[k] for k in farm.settings} == farm.settings
        assert env["HEVCQ_LOG_FORMAT"] == "json"
        assert container["stopTimeout"] == 120
        assert container["logConfiguration"]["logDriver"] == "awslogs"
        assert (int(td["cpu"]), int(td["memory"])) == (pool.deploy.cpu, pool.deploy.memory_mib)
        assert td["ephemeralStorage"]["sizeInGiB"] == pool.deploy.ephemeral_storage_gib
        assert td["taskRoleArn"] != td["executionRoleArn"]


def test_scaling_follows_the_pool_files(farm: AppliedFarm) -> None:
    scaling = farm.client("application-autoscaling")
    cluster = farm.outputs["cluster_name"]["value"]
    for name, pool in load_farm(WORKERS_DIR).items():
        resource_id = f"service/{cluster}/hevcq-{name}"
        [target] = scaling.describe_scalable_targets(
            ServiceNamespace="ecs", ResourceIds=[resource_id]
        )["ScalableTargets"]
        assert (target["MinCapacity"], target["MaxCapacity"]) == (
            pool.deploy.min_tasks,
            pool.deploy.max_tasks,
        )
        policies = {
            p["PolicyName"]: p
            for p in scaling.describe_scaling_policies(
                ServiceNamespace="ecs", ResourceId=resource_id
            )["ScalingPolicies"]
        }
        backlog = policies[f"hevcq-{name}-backlog-per-task"]
        config = backlog["TargetTrackingScalingPolicyConfiguration"]
        assert config["TargetValue"] == pool.deploy.backlog_per_task
        assert policies[f"hevcq-{name}-wake"]["PolicyType"] == "StepScaling"


def test_deleting_a_policy_that_is_gone_is_answered_as_aws_does(farm: AppliedFarm) -> None:
    """The provider counts ObjectNotFoundException on delete as done, so ``terraform
    destroy`` (proven at the end of the session) survives its SDK resending a delete."""
    scaling = farm.client("application-autoscaling")
    cluster = farm.outputs["cluster_name"]["value"]
    with pytest.raises(ClientError) as gone:
        scaling.delete_scaling_policy(
            PolicyName="hevcq-hevc-no-such-policy",
            ServiceNamespace="ecs",
            ResourceId=f"service/{cluster}/hevcq-hevc",
            ScalableDimension="ecs:service:DesiredCount",
        )
    assert gone.value.response["Error"]["Code"] == "ObjectNotFoundException"


def test_dead_letter_alarms_notify_alerts(farm: AppliedFarm) -> None:
    cw = farm.client("cloudwatch")
    alerts = farm.outputs["alerts_topic_arn"]["value"]
    for name in load_farm(WORKERS_DIR):
        [alarm] = cw.describe_alarms(AlarmNames=[f"hevcq-{name}-dlq-not-empty"])["MetricAlarms"]
        assert alarm["AlarmActions"] == [alerts]
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": f"hevcq-{name}-dlq"}]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


# The API (modules/api). moto stores the function, the HTTP API, its authorizer and the
# user pool, but neither runs the image nor routes requests through the gateway nor checks
# JWTs or IAM: the handler is tested in tests/unit/test_lambda_handler.py, the rest here
# is what AWS would be asked to create.


def _api_function(farm: AppliedFarm) -> dict[str, Any]:
    name = farm.outputs["api_function_name"]["value"]
    config: dict[str, Any] = farm.client("lambda").get_function(FunctionName=name)["Configuration"]
    return config


def test_api_function_runs_the_image_with_the_farm_settings(farm: AppliedFarm) -> None:
    fn = _api_function(farm)
    assert (fn["PackageType"], fn["Architectures"]) == ("Image", ["x86_64"])
    code = farm.client("lambda").get_function(FunctionName=fn["FunctionName"])["Code"]
    assert code["ImageUri"] == API_IMAGE
    # API Gateway gives up on an integration after 30 s.
    assert fn["Timeout"] < 30
    env = fn["Environment"]["Variables"]
    assert unknown_names(env) == [], "every variable is a setting hevcq reads"
    assert {k: env[k] for k in farm.settings} == farm.settings
    pool_id = farm.outputs["cognito_user_pool_id"]["value"]
    assert env["HEVCQ_OIDC_ISSUER"] == f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}"
    assert env["HEVCQ_OIDC_AUDIENCE"] == farm.outputs["cognito_client_id"]["value"]
    assert "HEVCQ_API_TOKEN" not in env
    assert (env["HEVCQ_LOG_FORMAT"], env["HEVCQ_RAW"]) == ("json", "keep")
    # The environment is encrypted with the farm's key, which the ledger uses too.
    key_arn = farm.client("dynamodb").describe_table(TableName=farm.settings["HEVCQ_LEDGER_TABLE"])[
        "Table"
    ]["SSEDescription"]["KMSMasterKeyArn"]
    assert fn["KMSKeyArn"] == key_arn


def test_http_api_guards_the_api_with_a_jwt_authorizer_on_the_pool(farm: AppliedFarm) -> None:
    gw = farm.client("apigatewayv2")
    url = farm.outputs["api_url"]["value"]
    [api] = [a for a in gw.get_apis()["Items"] if a["ApiEndpoint"] == url]
    assert api["ProtocolType"] == "HTTP"
    assert url.startswith("https://")
    routes = {r["RouteKey"]: r for r in gw.get_routes(ApiId=api["ApiId"])["Items"]}
    assert {k: r["AuthorizationType"] for k, r in routes.items()} == {
        "$default": "NONE",  # the pages, static files and the OpenAPI document
        "GET /api/health": "NONE",
        "ANY /api/{proxy+}": "JWT",
    }
    # moto lacks GetAuthorizers; the JWT route names its authorizer.
    authorizer = gw.get_authorizer(
        ApiId=api["ApiId"], AuthorizerId=routes["ANY /api/{proxy+}"]["AuthorizerId"]
    )
    env = _api_function(farm)["Environment"]["Variables"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"] == {
        "Issuer": env["HEVCQ_OIDC_ISSUER"],
        "Audience": [env["HEVCQ_OIDC_AUDIENCE"]],
    }
    [integration] = gw.get_integrations(ApiId=api["ApiId"])["Items"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"].endswith(
        f":function:{farm.outputs['api_function_name']['value']}/invocations"
    )
    assert {r["Target"] for r in routes.values()} == {
        f"integrations/{integration['IntegrationId']}"
    }
    [stage] = gw.get_stages(ApiId=api["ApiId"])["Items"]
    assert (stage["StageName"], stage["AutoDeploy"]) == ("$default", True)
    assert "authorization" not in stage["AccessLogSettings"]["Format"].lower()


def _throttles(default: dict[str, Any], per_route: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """(rate, burst) per route key, the stage default under ``$default``."""

    def pair(s: dict[str, Any]) -> tuple[float, int]:
        # The API's describe calls (moto) say ThrottlingRateLimit; the plan, the HCL name.
        if "ThrottlingRateLimit" in s:
            return float(s["ThrottlingRateLimit"]), int(s["ThrottlingBurstLimit"])
        return float(s["throttling_rate_limit"]), int(s["throttling_burst_limit"])

    return {"$default": pair(default), **{k: pair(v) for k, v in per_route.items()}}


def _assert_separate_budgets(throttles: dict[str, tuple[float, int]]) -> None:
    """Anonymous health checks and pages each get their own, smaller budget than the API."""
    assert set(throttles) == {"$default", "GET /api/health", "ANY /api/{proxy+}"}
    health, api = throttles["GET /api/health"], throttles["ANY /api/{proxy+}"]
    pages = throttles["$default"]
    assert health < api
    assert pages < api
    assert all(rate > 0 and burst >= 1 for rate, burst in throttles.values())


def test_health_and_the_authenticated_api_have_separate_throttles(farm: AppliedFarm) -> None:
    gw = farm.client("apigatewayv2")
    api_id = farm.outputs["api_url"]["value"].removeprefix("https://").split(".")[0]
    [stage] = gw.get_stages(ApiId=api_id)["Items"]
    _assert_separate_budgets(_throttles(stage["DefaultRouteSettings"], stage["RouteSettings"]))


def test_only_the_http_api_may_invoke_the_function(farm: AppliedFarm) -> None:
    fn = _api_function(farm)
    policy = json.loads(farm.client("lambda").get_policy(FunctionName=fn["FunctionName"])["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    api_id = farm.outputs["api_url"]["value"].removeprefix("https://").split(".")[0]
    assert f"{api_id}/*/*" in statement["Condition"]["ArnLike"]["AWS:SourceArn"]


def test_cognito_pool_admits_invited_people_and_has_an_operators_group(farm: AppliedFarm) -> None:
    cognito = farm.client("cognito-idp")
    pool_id = farm.outputs["cognito_user_pool_id"]["value"]
    pool = cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    client = cognito.describe_user_pool_client(
        UserPoolId=pool_id, ClientId=farm.outputs["cognito_client_id"]["value"]
    )["UserPoolClient"]
    assert "ClientSecret" not in client, "a public client: browsers and the CLI"
    # No plain password flow open to anyone: SRP, refresh, and the admin flow (AWS credentials).
    assert set(client["ExplicitAuthFlows"]) == {
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
        "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    }
    groups = [g["GroupName"] for g in cognito.list_groups(UserPoolId=pool_id)["Groups"]]
    env = _api_function(farm)["Environment"]["Variables"]
    assert groups == [env["HEVCQ_OIDC_OPERATOR_GROUP"]]


def _statements(farm: AppliedFarm) -> dict[str, dict[str, Any]]:
    role = _api_function(farm)["Role"].rsplit("/", 1)[-1]
    iam = farm.client("iam")
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    doc = json.loads(unquote_plus(doc)) if isinstance(doc, str) else doc
    out = {}
    for st in doc["Statement"]:
        listed = {
            k: [v] if isinstance(v, str) else v
            for k, v in st.items()
            if k in ("Action", "Resource")
        }
        out[st["Sid"]] = {**st, **listed}
    return out


def test_api_role_is_limited_to_what_the_server_reads_and_presigns(farm: AppliedFarm) -> None:
    statements = _statements(farm)
    bucket = f"arn:aws:s3:::{farm.settings['HEVCQ_BUCKET']}"
    for sid, st in statements.items():
        assert st["Effect"] == "Allow", sid
        assert not any("*" in a for a in st["Action"]), sid
        for resource in st["Resource"]:
            # A wildcard only for the keys under a prefix or the streams of a log group.
            assert "*" not in resource.removesuffix("/*").removesuffix(":log-stream:*"), sid
    actions = {a for st in statements.values() for a in st["Action"]}
    deletes = {
        r
        for st in statements.values()
        for a in st["Action"]
        if a.startswith("s3:Delete")
        for r in st["Resource"]
    }
    # Raw policy keep: no source is deleted; only settled uploads' in-flight markers go.
    assert deletes == {f"{bucket}/uploads/open/*"}, "raw policy keep: no delete of sources"
    assert not {
        a
        for a in actions
        if a.startswith("dynamodb:") and a not in ("dynamodb:Scan", "dynamodb:GetItem")
    }
    s3_resources = {
        (a, r)
        for st in statements.values()
        for a in st["Action"]
        if a.startswith("s3:")
        for r in st["Resource"]
    }
    assert s3_resources == {
        ("s3:ListBucket", bucket),
        ("s3:GetObject", f"{bucket}/TODO/*"),
        ("s3:GetObject", f"{bucket}/DONE/*"),
        ("s3:PutObject", f"{bucket}/TODO/*"),  # the presigned POST
        ("s3:GetObject", f"{bucket}/uploads/*"),
        ("s3:PutObject", f"{bucket}/uploads/*"),
        ("s3:DeleteObject", f"{bucket}/uploads/open/*"),
    }
    queues = {_attrs(farm, u)["QueueArn"] for u in farm.outputs["queue_urls"]["value"].values()}
    dlqs = {_attrs(farm, u)["QueueArn"] for u in farm.outputs["dlq_urls"]["value"].values()}
    sqs = {
        a: set(st["Resource"])
        for st in statements.values()
        for a in st["Action"]
        if a.startswith("sqs:")
    }
    assert sqs["sqs:GetQueueAttributes"] == queues | dlqs
    assert sqs["sqs:SendMessage"] == queues
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:StartMessageMoveTask"):
        assert sqs[action] == dlqs, action
    assert "sqs:PurgeQueue" not in sqs


def _stale_upload(farm: AppliedFarm, owner: str) -> str:
    """An in-flight marker of an upload whose ticket expired unused a day ago; its key."""
    made = datetime.now(UTC) - timedelta(days=1)
    upload_id = uploads.new_upload_id()
    record = uploads.UploadRecord(
        id=upload_id,
        owner=owner,
        filename="old.mov",
        key=f"TODO/{upload_id}/old.mov",
        created_at=made,
        max_bytes=100,
        expires_at=made + timedelta(hours=1),
    )
    marker = uploads.open_key(owner, upload_id, 100)
    farm.client("s3").put_object(
        Bucket=farm.settings["HEVCQ_BUCKET"], Key=marker, Body=record.model_dump_json().encode()
    )
    return marker


def test_api_role_allows_every_call_the_api_makes(
    farm: AppliedFarm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambda handler serves the applied farm; each AWS call it made, and the presigned
    POST it signed, is granted by the role (evaluated by tests/e2e/iamcheck.py: moto
    evaluates no IAM)."""
    farm.allow_plain_http()
    fn_env = _api_function(farm)["Environment"]["Variables"]
    env = {k: v for k, v in fn_env.items() if not k.startswith("HEVCQ_OIDC_")}
    # Token instead of Cognito: moto's pool issues no JWTs the app could verify.
    token = "r" * 40
    # One upload in flight at most: the ticket below first settles an old, unused one.
    quota = {"HEVCQ_API_TOKEN": token, "HEVCQ_UPLOADS_IN_FLIGHT": "1"}
    for name, value in {**farm.env, **env, **quota}.items():
        monkeypatch.setenv(name, value)
    stale = _stale_upload(farm, TOKEN_OWNER)
    monkeypatch.setattr(lambda_handler, "_CONTAINER", {})
    calls: list[tuple[str, str, dict[str, Any]]] = []
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        calls.append((client.meta.service_model.service_name, operation, dict(params)))
        return original(client, operation, params)

    pool = sorted(farm.outputs["dlq_urls"]["value"])[0]
    farm.client("sqs").send_message(
        QueueUrl=farm.outputs["dlq_urls"]["value"][pool], MessageBody="{}"
    )
    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)  # the API's calls from here

    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        event = http_api_event(method, path, auth, json.dumps(body) if body else None)
        response = lambda_handler.handler(event, Context())
        assert response["statusCode"] in (200, 201), (path, response["body"])
        return _json(response)

    assert call("GET", "/api/health")["status"] == "ok"
    for path in ("/api/status", "/api/dashboard", "/api/pools", "/api/jobs", "/api/deadletters"):
        call("GET", path)
    ticket = call("POST", "/api/uploads", {"filename": "clip.mov"})
    assert [v["id"] for v in call("GET", "/api/videos")["videos"]] == [ticket["id"]]
    assert stale in {c[2].get("Key") for c in calls if c[1] == "DeleteObject"}
    call("GET", f"/api/videos/{ticket['id']}")
    assert call("POST", "/api/redrive", {"pool": pool})["moved"] == 1

    _, _, _, region, account_id, _ = farm.settings["HEVCQ_UPLOADS_TOPIC_ARN"].split(":")
    where = iamcheck.Account(account_id=account_id, region=region)
    needs = {n for c in calls if (n := iamcheck.need(*c, where)) is not None}
    bucket = f"arn:aws:s3:::{farm.settings['HEVCQ_BUCKET']}"
    needs.add(iamcheck.Need("s3:PutObject", f"{bucket}/{ticket['key']}"))  # the presigned POST
    assert {n.action.split(":")[0] for n in needs} == {"s3", "sqs", "dynamodb"}
    statements = list(_statements(farm).values())
    refused = sorted(
        f"{n.action} {n.resource}" for n in needs if not iamcheck.allows(statements, n)
    )
    assert not refused, "\n".join(refused)


RECONFIGURED_TOKEN = "k" * 40


@pytest.fixture(scope="module")
def reconfigured(farm: AppliedFarm) -> dict[str, Any]:
    """A plan, not an apply, of the applied farm with Cognito off and raw deletion on."""
    variables = {
        **farm.variables,
        "enable_cognito": False,
        "api_token": RECONFIGURED_TOKEN,
        "api_raw_policy": "delete-when-settled",
    }
    return farm.terraform.plan(variables, "-refresh=false")


def _changes(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["address"]: r["change"] for r in plan["resource_changes"]}


def test_turning_cognito_off_leaves_the_app_token_as_the_guard(
    reconfigured: dict[str, Any],
) -> None:
    changes = _changes(reconfigured)
    deleted = {a for a, c in changes.items() if c["actions"] == ["delete"]}
    assert {
        "module.api[0].aws_cognito_user_pool.this[0]",
        "module.api[0].aws_cognito_user_pool_client.this[0]",
        "module.api[0].aws_cognito_user_group.operators[0]",
        "module.api[0].aws_apigatewayv2_authorizer.jwt[0]",
    } <= deleted
    assert not {a for a in deleted if "lambda_function" in a or "apigatewayv2_api" in a}
    # The routes stay (each keeps its throttle); the API route stops asking for a JWT.
    assert not {a for a in deleted if "apigatewayv2_route" in a}
    api_route = changes['module.api[0].aws_apigatewayv2_route.this["ANY /api/{proxy+}"]']
    assert api_route["after"]["authorization_type"] == "NONE"
    env = changes["module.api[0].aws_lambda_function.this"]["after"]["environment"][0]["variables"]
    assert env["HEVCQ_API_TOKEN"] == RECONFIGURED_TOKEN
    assert not {k for k in env if k.startswith("HEVCQ_OIDC_")}
    assert reconfigured["planned_values"]["outputs"]["cognito_user_pool_id"].get("value") is None


def test_without_cognito_health_and_the_api_keep_separate_throttles(
    reconfigured: dict[str, Any],
) -> None:
    """Without Cognito every request reaches the app: the routes and their limits stay."""
    [stage] = [
        r["values"]
        for r in _planned_resources(reconfigured)
        if r["address"] == "module.api[0].aws_apigatewayv2_stage.this"
    ]
    [default] = stage["default_route_settings"]
    _assert_separate_budgets(
        _throttles(default, {s["route_key"]: s for s in stage["route_settings"]})
    )


def _planned_resources(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    modules = [plan["planned_values"]["root_module"]]
    while modules:
        m = modules.pop()
        found.extend(m.get("resources", []))
        modules.extend(m.get("child_modules", []))
    return found


def test_raw_deletion_adds_delete_on_todo_only(
    farm: AppliedFarm, reconfigured: dict[str, Any]
) -> None:
    changes = _changes(reconfigured)
    env = changes["module.api[0].aws_lambda_function.this"]["after"]["environment"][0]["variables"]
    assert env["HEVCQ_RAW"] == "delete-when-settled"
    policy = json.loads(changes["module.api[0].aws_iam_role_policy.this"]["after"]["policy"])
    bucket = f"arn:aws:s3:::{farm.settings['HEVCQ_BUCKET']}"
    source = iamcheck.Need("s3:DeleteObject", f"{bucket}/TODO/01KAAAAAAAAAAAAAAAAAAAAAAA/a.mov")
    assert iamcheck.allows(policy["Statement"], source)
    assert not iamcheck.allows(list(_statements(farm).values()), source), "keep: no delete"
    for key in ("DONE/hevc/a.mp4", "uploads/x/01KAAAAAAAAAAAAAAAAAAAAAAA.json"):
        assert not iamcheck.allows(
            policy["Statement"], iamcheck.Need("s3:DeleteObject", f"{bucket}/{key}")
        )


def test_the_api_refuses_to_deploy_unguarded(farm: AppliedFarm) -> None:
    variables = {**farm.variables, "enable_cognito": False}
    with pytest.raises(AssertionError, match="needs api_token"):
        farm.terraform.plan(variables, "-refresh=false")


def test_only_pools_that_may_copy_the_primary_read_its_outputs_and_it_writes_theirs(
    farm: AppliedFarm,
) -> None:
    iam = farm.client("iam")
    bucket = farm.outputs["bucket"]["value"]
    for name in load_farm(WORKERS_DIR):
        doc = iam.get_role_policy(RoleName=f"hevcq-{name}-task", PolicyName="worker")
        policy = doc["PolicyDocument"]
        if isinstance(policy, str):
            policy = json.loads(unquote_plus(policy))
        statements = {s.get("Sid"): s for s in policy["Statement"]}
        listed = statements["ListOwnPrefixes"]["Condition"]["StringLike"]["s3:prefix"]
        pools = load_farm(WORKERS_DIR)
        # Sweeps and stale-output removal delete in the pool's own prefix, nowhere else.
        for other in pools:
            key = f"arn:aws:s3:::{bucket}/DONE/{other}/a.parts/0123456789abcdef/poster.jpg"
            need = iamcheck.Need("s3:DeleteObject", key)
            assert iamcheck.allows(policy["Statement"], need) == (other == name), (name, other)
        source = iamcheck.Need("s3:DeleteObject", f"arn:aws:s3:::{bucket}/TODO/a.mov")
        assert not iamcheck.allows(policy["Statement"], source)
        others = sorted(n for n, p in pools.items() if n != "hevc" and p.ladder is None)
        if pools[name].ladder is not None:  # a ladder copies nothing and is never copied
            assert "CopyPrimaryOutputs" not in statements
            assert "CopyForRenditions" not in statements
            assert f"DONE/{name}/*" in listed  # its parts are listed to sweep them
            continue
        if name == "hevc":  # the primary copies from nobody, and for every rendition
            assert "CopyPrimaryOutputs" not in statements
            assert "DONE/hevc/*" in listed
            rendition = statements["CopyForRenditions"]
            assert "s3:PutObject" in rendition["Action"]
            assert sorted(rendition["Resource"]) == [
                f"arn:aws:s3:::{bucket}/DONE/{n}/*" for n in others
            ]
            assert {f"DONE/{n}/*" for n in others} <= set(listed)
            continue
        assert "CopyForRenditions" not in statements  # a rendition writes only its own
        copy = statements["CopyPrimaryOutputs"]
        assert copy["Action"] == "s3:GetObject"
        assert copy["Resource"] == f"arn:aws:s3:::{bucket}/DONE/hevc/*"
        assert "DONE/hevc/*" in listed  # a HEAD of a cleaned-up output answers 404, not 403


@pytest.fixture(scope="module")
def mixed(farm: AppliedFarm) -> dict[str, Any]:
    """A plan, not an apply, of the applied farm as one mixed service for every pool."""
    return farm.terraform.plan({**farm.variables, "mixed_service": True}, "-refresh=false")


def _planned_data(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The data sources a plan read, from every module."""
    found: list[dict[str, Any]] = []
    modules = [plan.get("prior_state", {}).get("values", {}).get("root_module", {})]
    while modules:
        m = modules.pop()
        found.extend(r for r in m.get("resources", []) if r.get("mode") == "data")
        modules.extend(m.get("child_modules", []))
    return found


def _sqs_ids(spec_metrics: list[dict[str, Any]]) -> dict[str, str]:
    """Metric id to queue name, for the SQS metrics of a metric-math query."""
    found = {}
    for m in spec_metrics:
        stat = (m.get("metric_stat") or m.get("metric") or [{}])[0]
        metric = (stat.get("metric") or [stat])[0]
        if metric.get("namespace") != "AWS/SQS":
            continue
        dims = metric["dimensions"]
        found[m["id"]] = dims["QueueName"] if isinstance(dims, dict) else dims[0]["value"]
    return found


def test_a_mixed_service_takes_every_pools_work_and_scales_on_every_queue(
    mixed: dict[str, Any],
) -> None:
    pools = sorted(load_farm(WORKERS_DIR))
    others = [n for n in pools if n != "hevc"]  # the primary hosts the one service
    changes = _changes(mixed)
    deleted = {a for a, c in changes.items() if c["actions"] == ["delete"]}
    for name in others:
        prefix = f'module.pool["{name}"]'
        assert {
            f"{prefix}.aws_ecs_service.this[0]",
            f"{prefix}.aws_ecs_task_definition.this[0]",
            f"{prefix}.aws_appautoscaling_target.this[0]",
            f"{prefix}.aws_iam_role.task[0]",
        } <= deleted
        # The pool's queues, dead-letter queue, subscription and alarm stay.
        assert not {a for a in deleted if a.startswith(prefix) and ("sqs" in a or "sns" in a)}
    planned = {r["address"]: r["values"] for r in _planned_resources(mixed)}
    host = 'module.pool["hevc"]'
    [container] = json.loads(
        planned[f"{host}.aws_ecs_task_definition.this[0]"]["container_definitions"]
    )
    assert container["entryPoint"] + container["command"] == [
        "hevcq",
        "worker",
        *[a for name in ["hevc", *others] for a in ("--pool", name)],
    ]
    # The autoscaling metric: waiting and in-flight messages of every queue, per task.
    backlog = planned[f"{host}.aws_appautoscaling_policy.backlog[0]"]
    [config] = backlog["target_tracking_scaling_policy_configuration"]
    [spec] = config["customized_metric_specification"]
    ids = _sqs_ids(spec["metrics"])
    assert sorted(set(ids.values())) == sorted(f"hevcq-{n}" for n in pools)
    assert len(ids) == 2 * len(pools)  # visible and in flight of each
    [expression] = [m["expression"] for m in spec["metrics"] if m.get("return_data")]
    assert all(i in expression for i in ids)
    assert "tasks" in expression
    # The wake alarm: something waits in any queue and nothing is in flight in any.
    alarm = planned[f"{host}.aws_cloudwatch_metric_alarm.wake[0]"]
    alarm_ids = _sqs_ids(alarm["metric_query"])
    assert sorted(set(alarm_ids.values())) == sorted(f"hevcq-{n}" for n in pools)
    [wake] = [q["expression"] for q in alarm["metric_query"] if q.get("return_data")]
    assert all(i in wake for i in alarm_ids)


def test_a_mixed_services_role_may_do_each_pools_work_and_nothing_more(
    farm: AppliedFarm, mixed: dict[str, Any]
) -> None:
    planned = {r["address"]: r["values"] for r in _planned_resources(mixed)}
    # The role's policy is the data source's document (the role policy's copy of it is
    # only known at apply); the plan reads data sources whose inputs are known.
    address = 'module.pool["hevc"].data.aws_iam_policy_document.task'
    [document] = [r["values"]["json"] for r in _planned_data(mixed) if r["address"] == address]
    statements = json.loads(document)["Statement"]
    bucket = f"arn:aws:s3:::{farm.outputs['bucket']['value']}"
    for name in load_farm(WORKERS_DIR):
        queue = planned[f'module.pool["{name}"].aws_sqs_queue.this']["arn"]
        dlq = planned[f'module.pool["{name}"].aws_sqs_queue.dlq']["arn"]
        for action in ("sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"):
            assert iamcheck.allows(statements, iamcheck.Need(action, queue)), (name, action)
        assert iamcheck.allows(statements, iamcheck.Need("sqs:SendMessage", dlq)), name
        output = f"{bucket}/DONE/{name}/trip/a.mp4"
        assert iamcheck.allows(statements, iamcheck.Need("s3:PutObject", output)), name
        # Its own stale outputs and abandoned attempts' parts (RemoveOwnStaleObjects).
        assert iamcheck.allows(statements, iamcheck.Need("s3:DeleteObject", output)), name
    assert not iamcheck.allows(statements, iamcheck.Need("s3:PutObject", f"{bucket}/TODO/a.mp4"))
    for elsewhere in ("TODO/a.mp4", "DONE/not-served/a.mp4", "a.mp4"):
        need = iamcheck.Need("s3:DeleteObject", f"{bucket}/{elsewhere}")
        assert not iamcheck.allows(statements, need), elsewhere


def test_players_may_read_outputs_across_origins_and_nothing_more(farm: AppliedFarm) -> None:
    # The API's play links redirect a player to presigned GETs of a ladder's parts: the
    # bucket answers them to a page of any origin, for GET and HEAD with a Range only.
    bucket = farm.outputs["bucket"]["value"]
    rules = farm.client("s3").get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert len(rules) == 1
    rule = rules[0]
    assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]
    assert rule["AllowedOrigins"] == ["*"]
    assert rule["AllowedHeaders"] == ["Range"]
    assert "Content-Range" in rule["ExposeHeaders"]
