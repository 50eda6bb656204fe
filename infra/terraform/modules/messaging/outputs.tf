output "kms_key_arn" {
  description = "The farm's KMS key (topics and ledger); publishers need GenerateDataKey and Decrypt on it."
  value       = aws_kms_key.this.arn
}

output "events_topic_arn" {
  description = "Topic the workers publish job results to."
  value       = aws_sns_topic.events.arn
}

output "results_queue_url" {
  description = "Queue `hevcq fetch` reads job results from."
  value       = aws_sqs_queue.results.id
}

output "results_queue_arn" {
  description = "ARN of the results queue."
  value       = aws_sqs_queue.results.arn
}

output "alerts_topic_arn" {
  description = "Topic the operational alarms notify."
  value       = aws_sns_topic.alerts.arn
}
