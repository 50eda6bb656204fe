variable "region" {
  description = "AWS region of the farm."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name; must equal the CLI's HEVCQ_NAME_PREFIX."
  type        = string
  default     = "hevcq"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name_prefix))
    error_message = "name_prefix is 1 to 31 of a-z, 0-9 and -, starting with a letter (as in hevcq.settings)."
  }
}

variable "bucket_name" {
  description = "Media bucket name; null derives \"<name_prefix>-media-<account id>-<region>\"."
  type        = string
  default     = null
}

variable "workers_dir" {
  description = "Folder of pool files (*.yaml, *.yml); null means the repository's workers/."
  type        = string
  default     = null
}

variable "image" {
  description = "Worker image built from docker/worker.Dockerfile, e.g. an ECR URI with a tag or digest."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the worker tasks; they need a route to S3, SQS, SNS, DynamoDB, ECR and CloudWatch Logs (internet gateway, NAT or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "Give at least one subnet."
  }
}

variable "security_group_ids" {
  description = "Security groups for the worker tasks; workers take no inbound traffic, so egress on 443 is enough."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks a public IP: true for public subnets without NAT (the cheapest setup)."
  type        = bool
  default     = true
}

variable "todo_expiry_days" {
  description = "Days after which a leftover upload under TODO/ is deleted (safety net)."
  type        = number
  default     = 14
}

variable "done_expiry_days" {
  description = "Days after which an unfetched output under DONE/ is deleted (safety net)."
  type        = number
  default     = 30
}

variable "play_origins" {
  description = "Web origins whose players may read outputs by presigned GET (the bucket's CORS rule); [] for none."
  type        = list(string)
  default     = ["*"]
}

variable "force_destroy_bucket" {
  description = "Let `terraform destroy` delete the bucket with objects still in it."
  type        = bool
  default     = false
}

variable "ledger_deletion_protection" {
  description = "Protect the ledger table from deletion."
  type        = bool
  default     = false
}

variable "results_retention_s" {
  description = "How long job results wait in the results queue (seconds, at most 14 days)."
  type        = number
  default     = 1209600
}

variable "log_retention_days" {
  description = "Days the workers' logs are kept in CloudWatch Logs."
  type        = number
  default     = 30
}

variable "alert_emails" {
  description = "Addresses notified when a dead-letter queue receives messages."
  type        = list(string)
  default     = []
}

variable "spot_weights" {
  description = "How a Spot pool's tasks split between FARGATE_SPOT and FARGATE."
  type = object({
    spot      = number
    on_demand = number
  })
  default = { spot = 3, on_demand = 1 }
}

variable "scale_in_cooldown_s" {
  description = "Seconds between scale-in steps of each pool's backlog policy."
  type        = number
  default     = 300
}

variable "mixed_service" {
  description = "Deploy one ECS service whose tasks take every pool's work (`hevcq worker --pool a --pool b ...`), scaled on the sum of the queues, instead of a service per pool: a small farm's choice. It runs with the primary pool's deploy section (cpu, memory, task counts), or the first pool's by name when there is no primary."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags on every resource (added to hevcq:farm = name_prefix)."
  type        = map(string)
  default     = {}
}

variable "api_enabled" {
  description = "Deploy the dashboard and the API (modules/api: Lambda behind an HTTP API); needs api_image."
  type        = bool
  default     = false
}

variable "api_image" {
  description = "API image built from docker/api.Dockerfile, an ECR URI in the farm's account and region (used when api_enabled)."
  type        = string
  default     = null
}

variable "enable_cognito" {
  description = "With the API: a Cognito user pool whose JWTs the HTTP API and the app check; false leaves api_token as the guard."
  type        = bool
  default     = true
}

variable "api_token" {
  description = "With the API and enable_cognito = false: the operator bearer token (HEVCQ_API_TOKEN), at least 32 characters."
  type        = string
  default     = null
  sensitive   = true
}

variable "api_play_key" {
  description = "With the API: the key signing its play links (HEVCQ_PLAY_KEY), at least 32 characters. Without it each Lambda instance makes its own, and a link made by one is refused by another."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.api_play_key == null || length(coalesce(var.api_play_key, "x")) >= 32
    error_message = "api_play_key must be at least 32 characters."
  }
}

variable "api_raw_policy" {
  description = "With the API: HEVCQ_RAW, \"keep\" or \"delete-when-settled\" (delete an upload's source once every pool settled it)."
  type        = string
  default     = "keep"
}
