data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id    = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  results_queue = "${var.name_prefix}-results"
  # Built rather than read from the queue so the policy can be part of the queue itself.
  results_queue_arn = "arn:${local.partition}:sqs:${data.aws_region.current.name}:${local.account_id}:${local.results_queue}"
}

# One customer managed key for the farm's topics and ledger. S3 and CloudWatch can only
# publish to an encrypted topic when the key policy lets their service principals use
# the key, which the AWS managed aws/sns key never does.
data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a key policy's "*" resource is this key; the account statement delegates to IAM
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource is this key; the account statement delegates to IAM
  #checkov:skip=CKV_AWS_356:a key policy's "*" resource is this key; the account statement delegates to IAM
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "ServicesPublishToTopics"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com", "cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "hevcq ${var.name_prefix}: topics and ledger"
  enable_key_rotation     = true
  deletion_window_in_days = var.key_deletion_window_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

resource "aws_sns_topic" "events" {
  name              = "${var.name_prefix}-events"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_sqs_queue" "results" {
  name                      = local.results_queue
  message_retention_seconds = var.results_retention_s
  # SSE-SQS: encrypted at rest with no KMS request per receive and no key grant for SNS.
  sqs_managed_sse_enabled = true
  # Inline rather than aws_sqs_queue_policy: one attribute propagation wait instead of two.
  policy = data.aws_iam_policy_document.results.json
  tags   = var.tags
}

data "aws_iam_policy_document" "results" {
  statement {
    sid       = "EventsTopicSends"
    actions   = ["sqs:SendMessage"]
    resources = [local.results_queue_arn]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.events.arn]
    }
  }
}

resource "aws_sns_topic_subscription" "results" {
  topic_arn            = aws_sns_topic.events.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.results.arn
  raw_message_delivery = true
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = var.tags
}

data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "AlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_sns_topic_subscription" "alert_emails" {
  for_each = toset(var.alert_emails)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}
