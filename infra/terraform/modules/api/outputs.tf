output "url" {
  description = "Base URL of the dashboard and the API (the HTTP API's default endpoint)."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "function_name" {
  description = "Name of the Lambda function serving hevcq.web."
  value       = aws_lambda_function.this.function_name
}

output "role_arn" {
  description = "Role the API runs as."
  value       = aws_iam_role.this.arn
}

output "api_id" {
  description = "Id of the HTTP API."
  value       = aws_apigatewayv2_api.this.id
}

output "log_group_name" {
  description = "CloudWatch log group of the function."
  value       = aws_cloudwatch_log_group.this.name
}

output "cognito_user_pool_id" {
  description = "Cognito user pool of the API's users (null when enable_cognito is false)."
  value       = var.enable_cognito ? aws_cognito_user_pool.this[0].id : null
}

output "cognito_client_id" {
  description = "App client id, the JWT audience (null when enable_cognito is false)."
  value       = var.enable_cognito ? aws_cognito_user_pool_client.this[0].id : null
}

output "jwt_issuer" {
  description = "Issuer the JWT authorizer and the app accept (null when enable_cognito is false)."
  value       = local.issuer
}
