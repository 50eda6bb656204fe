data "aws_iam_policy_document" "assume_ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    # Only ECS tasks of this account may assume the pool's role (confused deputy guard).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# What the worker code may do: this pool's queues and output prefix (and those of the pools
# it serves as a mixed service), nothing of the others.
resource "aws_iam_role" "task" {
  count              = var.deploy_service ? 1 : 0
  name               = "${local.service_name}-task"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ReadSources"
    actions   = ["s3:GetObject"]
    resources = ["${var.farm.bucket_arn}/TODO/*"]
  }

  statement {
    sid = "WriteOwnOutputs"
    # GetObject also grants HeadObject; multipart uploads need AbortMultipartUpload to clean up.
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [for p in local.served_prefixes : "${var.farm.bucket_arn}/${p}*"]
  }

  statement {
    sid = "RemoveOwnStaleObjects"
    # A worker removes what its own pool's newer commits left stale: a ladder's (or a
    # poster's) parts of earlier attempts, and the output of a version that now has none.
    # No more than overwriting, which it may do anyway; never another pool's, never TODO/.
    actions   = ["s3:DeleteObject"]
    resources = [for p in local.served_prefixes : "${var.farm.bucket_arn}/${p}*"]
  }

  dynamic "statement" {
    for_each = local.copy_prefixes
    content {
      sid = "CopyPrimaryOutputs"
      # A copy reads its source: GetObject (and HEAD) of the primary's committed outputs.
      actions   = ["s3:GetObject"]
      resources = ["${var.farm.bucket_arn}/${statement.value}*"]
    }
  }

  dynamic "statement" {
    for_each = length(local.copy_to_prefixes) > 0 ? [1] : []
    content {
      sid = "CopyForRenditions"
      # The primary copies its committed output into each sharing rendition's key at its
      # commit: the same conditional write (and HEAD) a rendition's own worker makes.
      actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
      resources = [for p in local.copy_to_prefixes : "${var.farm.bucket_arn}/${p}*"]
    }
  }

  statement {
    sid = "ListOwnPrefixes"
    # Without ListBucket a HEAD of a missing key answers 403 instead of 404.
    actions   = ["s3:ListBucket"]
    resources = [var.farm.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values = concat(
        ["TODO/*"],
        [for p in local.served_prefixes : "${p}*"],
        [for p in concat(local.copy_prefixes, local.copy_to_prefixes) : "${p}*"],
      )
    }
  }

  statement {
    sid = "ConsumeOwnQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    # Built from the naming convention (as the queue's own policy is), so the document is
    # known at plan time whatever else the plan changes.
    resources = local.served_queue_arns
  }

  statement {
    sid       = "DeadLetterPermanentFailures"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = local.served_dlq_arns
  }

  statement {
    sid = "LedgerItems"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:ConditionCheckItem",
    ]
    resources = [var.farm.ledger_table_arn]
  }

  statement {
    sid       = "PublishEvents"
    actions   = ["sns:Publish"]
    resources = [var.farm.events_topic_arn]
  }

  statement {
    sid = "UseFarmKey"
    # The events topic and the ledger are encrypted with the farm's key.
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.farm.kms_key_arn]
  }

  statement {
    sid = "ProtectOwnTasksFromScaleIn"
    # A busy worker marks its task protected so target tracking's scale-in skips it.
    actions   = ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${var.cluster.name}/*"]
  }
}

resource "aws_iam_role_policy" "task" {
  count  = var.deploy_service ? 1 : 0
  name   = "worker"
  role   = aws_iam_role.task[0].id
  policy = data.aws_iam_policy_document.task.json
}

moved {
  from = aws_iam_role.task
  to   = aws_iam_role.task[0]
}

moved {
  from = aws_iam_role_policy.task
  to   = aws_iam_role_policy.task[0]
}
