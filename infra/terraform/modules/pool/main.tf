data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  queue_name   = "${var.name_prefix}-${var.name}"
  dlq_name     = "${var.name_prefix}-${var.name}-dlq"
  service_name = "${var.name_prefix}-${var.name}"
  region       = data.aws_region.current.name
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  # Built rather than read from the queue so the policy can be part of the queue itself.
  queue_arn = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${local.queue_name}"
  # Where a server-side copy may read from: the primary's outputs (hevcq.worker.shared).
  copy_prefixes = var.copy_from_pool == null ? [] : ["DONE/${var.copy_from_pool}/"]
  # The renditions the primary copies for at its commit: their outputs, written by the copy.
  copy_to_prefixes = [for p in var.copy_to_pools : "DONE/${p}/"]
  # The pools whose queues this pool's service consumes: its own, then those it serves as
  # a farm's one mixed service (`hevcq worker --pool a --pool b ...`). Names and ARNs are
  # built from the naming convention, so no pool module depends on another.
  served_pools       = concat([var.name], var.serves_pools)
  served_queue_names = [for p in local.served_pools : "${var.name_prefix}-${p}"]
  served_queue_arns  = [for q in local.served_queue_names : "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${q}"]
  served_dlq_arns    = [for q in local.served_queue_names : "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${q}-dlq"]
  served_prefixes    = [for p in local.served_pools : "DONE/${p}/"]
  # Fargate's ceiling for stopTimeout: SIGTERM, then this long before SIGKILL.
  stop_timeout_s = 120
  scratch_dir    = "/scratch"
}

resource "aws_sqs_queue" "dlq" {
  name                      = local.dlq_name
  message_retention_seconds = var.queue.dlq_retention_s
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "this" {
  name                       = local.queue_name
  visibility_timeout_seconds = var.queue.visibility_timeout_s
  message_retention_seconds  = var.queue.retention_s
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.queue.max_receive_count
  })
  # Inline rather than aws_sqs_queue_policy: one attribute propagation wait instead of two.
  policy = data.aws_iam_policy_document.queue.json
  tags   = var.tags
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid       = "UploadsTopicSends"
    actions   = ["sqs:SendMessage"]
    resources = [local.queue_arn]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [var.uploads_topic_arn]
    }
  }
}

resource "aws_sns_topic_subscription" "this" {
  topic_arn            = var.uploads_topic_arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.this.arn
  raw_message_delivery = true
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  alarm_name          = "${local.dlq_name}-not-empty"
  alarm_description   = "Jobs of pool ${var.name} gave up; inspect with `hevcq status`, retry with `hevcq redrive`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.farm.alerts_topic_arn]
  ok_actions          = [var.farm.alerts_topic_arn]
  tags                = var.tags
}
