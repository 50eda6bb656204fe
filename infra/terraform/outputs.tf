output "bucket" {
  description = "Media bucket: uploads under TODO/, outputs under DONE/<pool>/."
  value       = module.storage.bucket_name
}

output "region" {
  description = "Region of the farm."
  value       = var.region
}

output "name_prefix" {
  description = "Prefix of every resource name."
  value       = var.name_prefix
}

output "uploads_topic_arn" {
  description = "Topic of the bucket's TODO/ events."
  value       = module.storage.uploads_topic_arn
}

output "events_topic_arn" {
  description = "Topic the workers publish job results to."
  value       = module.messaging.events_topic_arn
}

output "alerts_topic_arn" {
  description = "Topic of the operational alarms."
  value       = module.messaging.alerts_topic_arn
}

output "results_queue_url" {
  description = "Queue of job results, read by `hevcq fetch`."
  value       = module.messaging.results_queue_url
}

output "ledger_table" {
  description = "Name of the ledger table."
  value       = module.ledger.table_name
}

output "queue_urls" {
  description = "Each pool's queue URL, by pool name."
  value       = { for name, pool in module.pool : name => pool.queue_url }
}

output "dlq_urls" {
  description = "Each pool's dead-letter queue URL, by pool name."
  value       = { for name, pool in module.pool : name => pool.dlq_url }
}

output "cluster_name" {
  description = "ECS cluster of the workers."
  value       = module.cluster.cluster_name
}

output "service_names" {
  description = "Each pool's ECS service, by pool name (with mixed_service, the one service for every pool)."
  value       = { for name, pool in module.pool : name => pool.service_name != null ? pool.service_name : module.pool[local.mixed_host].service_name }
}

output "log_group_name" {
  description = "CloudWatch log group of the workers."
  value       = module.cluster.log_group_name
}

output "pools" {
  description = "The pool files as Terraform read them, defaults filled in (queue and deploy)."
  value       = local.pools
}

output "hevcq_settings" {
  description = "HEVCQ_* variables for the CLI (`hevcq config from-terraform` writes them to its env file)."
  value       = local.hevcq_settings
}

output "api_url" {
  description = "Base URL of the dashboard and the API (null unless api_enabled)."
  value       = one(module.api[*].url)
}

output "api_function_name" {
  description = "Lambda function serving the API (null unless api_enabled)."
  value       = one(module.api[*].function_name)
}

output "cognito_user_pool_id" {
  description = "Cognito user pool of the API's users (null unless api_enabled and enable_cognito)."
  value       = one(module.api[*].cognito_user_pool_id)
}

output "cognito_client_id" {
  description = "Cognito app client id, the JWT audience (null unless api_enabled and enable_cognito)."
  value       = one(module.api[*].cognito_client_id)
}
