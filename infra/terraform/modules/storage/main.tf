data "aws_caller_identity" "current" {}

resource "aws_s3_bucket" "this" {
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# SSE-S3: multi-gigabyte media read by ffmpeg would cost a KMS request per part and a
# key grant for every reader (workers and each ingest host) under SSE-KMS.
resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# Players (hls.js on an app's page, the dashboard) read a ladder's segments from the bucket
# by the presigned GETs the API's play links redirect to (hevcq.web.play). CORS only lets a
# page read what its request was already allowed to fetch: the bucket stays private. The
# objects' types (playlists, CMAF segments, posters) are set by the worker on each upload.
resource "aws_s3_bucket_cors_configuration" "this" {
  count  = length(var.play_origins) > 0 ? 1 : 0
  bucket = aws_s3_bucket.this.id

  cors_rule {
    id              = "play-outputs"
    allowed_methods = ["GET", "HEAD"]
    allowed_origins = var.play_origins
    allowed_headers = ["Range"]
    expose_headers  = ["Content-Length", "Content-Range", "ETag"]
    max_age_seconds = 3600
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

# A safety net, not the workflow: `hevcq fetch` deletes what it has swapped in, so these
# only catch what a lost laptop or an abandoned run left behind.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-todo"
    status = "Enabled"
    filter {
      prefix = "TODO/"
    }
    expiration {
      days = var.todo_expiry_days
    }
  }

  rule {
    id     = "expire-done"
    status = "Enabled"
    filter {
      prefix = "DONE/"
    }
    expiration {
      days = var.done_expiry_days
    }
  }

  # Parts of an interrupted upload are billed until aborted and never show in a listing.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
}

resource "aws_sns_topic" "uploads" {
  name              = "${var.name_prefix}-uploads"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "uploads" {
  statement {
    sid       = "OnlyThisBucketPublishes"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.uploads.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "uploads" {
  arn    = aws_sns_topic.uploads.arn
  policy = data.aws_iam_policy_document.uploads.json
}

resource "aws_s3_bucket_notification" "this" {
  bucket = aws_s3_bucket.this.id

  topic {
    topic_arn     = aws_sns_topic.uploads.arn
    events        = ["s3:ObjectCreated:*"]
    filter_prefix = "TODO/"
  }

  # S3 sends a test event on save and refuses the configuration if it cannot publish.
  depends_on = [aws_sns_topic_policy.uploads]
}
