output "bucket_name" {
  description = "Name of the media bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the media bucket."
  value       = aws_s3_bucket.this.arn
}

output "uploads_topic_arn" {
  description = "Topic that receives the bucket's ObjectCreated events under TODO/."
  value       = aws_sns_topic.uploads.arn
}
