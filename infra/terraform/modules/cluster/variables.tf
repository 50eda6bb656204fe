variable "name_prefix" {
  description = "Prefix of every resource name; the cluster is named after it."
  type        = string
}

variable "log_retention_days" {
  description = "Days the workers' CloudWatch logs are kept."
  type        = number
  default     = 30
}

variable "ecr_repository_arns" {
  description = "ECR repositories the tasks pull from (empty for a public or other registry)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
