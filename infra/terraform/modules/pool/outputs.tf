output "queue_url" {
  description = "URL of the pool's queue."
  value       = aws_sqs_queue.this.id
}

output "queue_arn" {
  description = "ARN of the pool's queue."
  value       = aws_sqs_queue.this.arn
}

output "dlq_url" {
  description = "URL of the pool's dead-letter queue."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_arn" {
  description = "ARN of the pool's dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "service_name" {
  description = "Name of the pool's ECS service."
  value       = var.deploy_service ? local.service_name : null
}

output "task_role_arn" {
  description = "Role the pool's workers run as."
  value       = one(aws_iam_role.task[*].arn)
}

output "task_definition_arn" {
  description = "Current task definition of the pool."
  value       = one(aws_ecs_task_definition.this[*].arn)
}
