data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    # Only Lambda functions of this account may assume the API's role.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = local.name
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = var.tags
}

# What hevcq.web calls, and what the URLs it presigns need (S3 checks a presigned request
# against the signer's permissions when the request arrives).
data "aws_iam_policy_document" "this" {
  statement {
    sid = "ListBucket"
    # HeadBucket (/api/health) carries no prefix, so no s3:prefix condition fits it. The
    # listing reveals only keys under TODO/, DONE/ and uploads/, which this role reads anyway.
    actions   = ["s3:ListBucket"]
    resources = [var.farm.bucket_arn]
  }

  statement {
    sid = "ReadSourcesAndOutputs"
    # HEAD of sources and outputs (job and video status), and the presigned download links.
    actions   = ["s3:GetObject"]
    resources = ["${var.farm.bucket_arn}/TODO/*", "${var.farm.bucket_arn}/DONE/*"]
  }

  statement {
    sid = "PresignUploads"
    # The presigned POST to TODO/<id>/<filename> is signed with this role's credentials.
    actions   = ["s3:PutObject"]
    resources = ["${var.farm.bucket_arn}/TODO/*"]
  }

  statement {
    sid       = "UploadRecords"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.farm.bucket_arn}/uploads/*"]
  }

  statement {
    sid = "SettleUploadsInFlight"
    # An upload's in-flight marker goes once every pool has finished with it: the quota
    # counts the markers. The records themselves are never deleted.
    actions   = ["s3:DeleteObject"]
    resources = ["${var.farm.bucket_arn}/uploads/open/*"]
  }

  dynamic "statement" {
    for_each = var.raw_policy == "delete-when-settled" ? [1] : []
    content {
      sid       = "DeleteSettledSources"
      actions   = ["s3:DeleteObject"]
      resources = ["${var.farm.bucket_arn}/TODO/*"]
    }
  }

  statement {
    sid = "ReadLedger"
    # The dashboard scans; a video's status and the raw policy read one item.
    actions   = ["dynamodb:Scan", "dynamodb:GetItem"]
    resources = [var.farm.ledger_table_arn]
  }

  statement {
    sid = "UseFarmKey"
    # The ledger, and the function's environment, are encrypted with the farm's key.
    actions   = ["kms:Decrypt"]
    resources = [var.farm.kms_key_arn]
  }

  statement {
    sid = "QueueDepths"
    # Finding the queues by name, and their message counts.
    actions   = ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
    resources = concat(var.farm.queue_arns, var.farm.dlq_arns)
  }

  statement {
    sid = "PeekAndRedriveDeadLetters"
    # Peeking receives and makes visible again; a redrive moves (SQS's move task) or
    # receives, resends and deletes.
    actions = [
      "sqs:ReceiveMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:StartMessageMoveTask",
    ]
    resources = var.farm.dlq_arns
  }

  statement {
    sid       = "RedriveToPoolQueues"
    actions   = ["sqs:SendMessage"]
    resources = var.farm.queue_arns
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "api"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}
