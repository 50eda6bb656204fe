data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "${var.name_prefix}-api"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  # API Gateway ends an integration after 30 s; the function stops a little before.
  timeout_s = 29
  # hevcq.settings' default group for operators; the pool's group carries the same name.
  operator_group = "operators"

  issuer = var.enable_cognito ? "https://cognito-idp.${local.region}.amazonaws.com/${aws_cognito_user_pool.this[0].id}" : null
  # Cognito on: the gateway and the app both check the pool's JWTs. Off: the app's token.
  auth_environment = var.enable_cognito ? tomap({
    HEVCQ_OIDC_ISSUER         = local.issuer
    HEVCQ_OIDC_AUDIENCE       = aws_cognito_user_pool_client.this[0].id
    HEVCQ_OIDC_OPERATOR_GROUP = local.operator_group
    }) : tomap({
    HEVCQ_API_TOKEN = var.api_token
  })
  play_environment = var.play_key == null ? tomap({}) : tomap({ HEVCQ_PLAY_KEY = var.play_key })
  environment = merge(var.environment, local.auth_environment, local.play_environment, {
    HEVCQ_LOG_FORMAT = "json"
    HEVCQ_RAW        = var.raw_policy
  })

  # The pages, their static files, the OpenAPI document and /api/health need no
  # credentials; everything else under /api/ needs a JWT of the pool when Cognito is on.
  # The three routes exist either way: each has its own throttle, so anonymous traffic
  # cannot spend the budget of authenticated callers.
  routes = {
    "$default"          = false
    "GET /api/health"   = false
    "ANY /api/{proxy+}" = var.enable_cognito
  }
  route_throttles = {
    "GET /api/health"   = var.throttle.health
    "ANY /api/{proxy+}" = var.throttle.api
  }
}

resource "aws_cloudwatch_log_group" "this" {
  # Lambda's own log group name, so its logs land here with this retention.
  name              = "/aws/lambda/${local.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:API Gateway invokes the function synchronously; a dead-letter queue only receives failed asynchronous invocations
  #checkov:skip=CKV_AWS_117:the function calls only public AWS APIs (S3, SQS, DynamoDB); a VPC would add a NAT gateway or endpoints and nothing to protect
  #checkov:skip=CKV_AWS_115:the stage's per-route throttles cap the load; reserving concurrency fails on accounts whose limit is the default minimum of 10
  #checkov:skip=CKV_AWS_272:code signing applies to zip packages only; the image is pinned by the ECR URI given in var.image
  #checkov:skip=CKV_AWS_50:structlog JSON lines in CloudWatch Logs trace each request; X-Ray would need a role statement on "*"
  function_name = local.name
  description   = "hevcq ${var.name_prefix}: the dashboard and the API (hevcq.web through Mangum)"
  role          = aws_iam_role.this.arn
  package_type  = "Image"
  image_uri     = var.image
  architectures = ["x86_64"]
  memory_size   = var.memory_mib
  timeout       = local.timeout_s
  # The environment holds the API token when Cognito is off: encrypt it with the farm's key.
  kms_key_arn = var.farm.kms_key_arn

  environment {
    variables = local.environment
  }

  tags = var.tags

  # The role's policy and the log group first, so the first cold start can log and read.
  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.this]

  lifecycle {
    precondition {
      condition     = var.enable_cognito || var.api_token != null
      error_message = "With enable_cognito = false the API needs api_token (HEVCQ_API_TOKEN) to guard it."
    }
  }
}

resource "aws_cognito_user_pool" "this" {
  count = var.enable_cognito ? 1 : 0

  name                     = local.name
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]
  mfa_configuration        = "OPTIONAL"

  # People are invited by an administrator; nobody signs themselves up.
  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length                   = 12
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = false
    temporary_password_validity_days = 7
  }

  software_token_mfa_configuration {
    enabled = true
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }

  tags = var.tags
}

resource "aws_cognito_user_pool_client" "this" {
  count = var.enable_cognito ? 1 : 0

  name         = local.name
  user_pool_id = aws_cognito_user_pool.this[0].id
  # A public client (browser, apps): no secret, SRP so the password never leaves the
  # caller. The admin flow needs AWS credentials of the account (AdminInitiateAuth): it
  # lets an operator fetch a token with the AWS CLI.
  generate_secret = false
  explicit_auth_flows = [
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
  ]
  prevent_user_existence_errors = "ENABLED"
  enable_token_revocation       = true
  access_token_validity         = 60
  id_token_validity             = 60
  refresh_token_validity        = 30

  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "days"
  }
}

resource "aws_cognito_user_group" "operators" {
  count = var.enable_cognito ? 1 : 0

  name         = local.operator_group
  user_pool_id = aws_cognito_user_pool.this[0].id
  description  = "May read every job and redrive dead letters (HEVCQ_OIDC_OPERATOR_GROUP)."
}

resource "aws_apigatewayv2_api" "this" {
  name          = local.name
  protocol_type = "HTTP"
  description   = "hevcq ${var.name_prefix}: the dashboard and the API"
  tags          = var.tags
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  count = var.enable_cognito ? 1 : 0

  api_id           = aws_apigatewayv2_api.this.id
  name             = "cognito"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  # Accepts ID tokens (aud) and access tokens (client_id) of the app client.
  jwt_configuration {
    issuer   = local.issuer
    audience = [aws_cognito_user_pool_client.this[0].id]
  }
}

resource "aws_apigatewayv2_integration" "this" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.this.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:the pages, static files, OpenAPI document and /api/health are public by design; the app checks credentials on every other route
  for_each = local.routes

  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.this.id}"
  authorization_type = each.value ? "JWT" : "NONE"
  authorizer_id      = each.value ? aws_apigatewayv2_authorizer.jwt[0].id : null
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/hevcq/${var.name_prefix}/api-access"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  # $default (the pages): the stage default. Health and the API: a limit each.
  default_route_settings {
    throttling_rate_limit  = var.throttle.pages.rate_per_s
    throttling_burst_limit = var.throttle.pages.burst
  }

  dynamic "route_settings" {
    for_each = local.route_throttles
    content {
      route_key              = route_settings.key
      throttling_rate_limit  = route_settings.value.rate_per_s
      throttling_burst_limit = route_settings.value.burst
    }
  }

  # A route's settings need the route to exist first.
  depends_on = [aws_apigatewayv2_route.this]

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    # No Authorization header and no query string: the log never holds a credential.
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      routeKey       = "$context.routeKey"
      path           = "$context.path"
      status         = "$context.status"
      latencyMs      = "$context.responseLatency"
      authorizerErr  = "$context.authorizer.error"
      integrationErr = "$context.integrationErrorMessage"
      sub            = "$context.authorizer.claims.sub"
    })
  }

  tags = var.tags
}

resource "aws_lambda_permission" "api" {
  statement_id  = "HttpApiInvokes"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "apigateway.amazonaws.com"
  # This API only: any stage, method and path.
  source_arn = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
