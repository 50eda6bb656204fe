variable "name_prefix" {
  description = "Prefix of every resource name; the function, API, role and user pool are \"<name_prefix>-api\"."
  type        = string
}

variable "image" {
  description = "API image built from docker/api.Dockerfile, an ECR URI with a tag or digest in the farm's account and region."
  type        = string
  nullable    = false

  validation {
    condition     = length(var.image) > 0
    error_message = "Give the API image (docker/api.Dockerfile) pushed to ECR."
  }
}

variable "environment" {
  description = "The farm's HEVCQ_* settings (bucket, region, name prefix, topic ARNs, results queue URL, ledger table)."
  type        = map(string)
}

variable "farm" {
  description = "Farm resources the API's role is scoped to: bucket, ledger table, the farm's KMS key and every pool's queue and dead-letter queue."
  type = object({
    bucket_arn       = string
    ledger_table_arn = string
    kms_key_arn      = string
    queue_arns       = list(string)
    dlq_arns         = list(string)
  })
}

variable "enable_cognito" {
  description = "Create a Cognito user pool and guard /api/* with a JWT authorizer on it; false leaves the app's own HEVCQ_API_TOKEN check as the guard."
  type        = bool
  default     = true
}

variable "play_key" {
  description = "The key signing play links (HEVCQ_PLAY_KEY); null: one per Lambda instance."
  type        = string
  default     = null
  sensitive   = true
}

variable "api_token" {
  description = "Operator bearer token (HEVCQ_API_TOKEN) when Cognito is off; stored encrypted with the farm's key in the function's environment."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.api_token == null || length(coalesce(var.api_token, "x")) >= 32
    error_message = "api_token must be at least 32 characters (e.g. `openssl rand -hex 32`)."
  }
}

variable "raw_policy" {
  description = "HEVCQ_RAW: keep uploaded sources, or delete one once every pool settled it (grants s3:DeleteObject on TODO/*)."
  type        = string
  default     = "keep"

  validation {
    condition     = contains(["keep", "delete-when-settled"], var.raw_policy)
    error_message = "raw_policy is \"keep\" or \"delete-when-settled\"."
  }
}

variable "memory_mib" {
  description = "Memory of the function in MiB; Lambda gives CPU in proportion, which shortens cold starts."
  type        = number
  default     = 1024
}

variable "throttle" {
  description = "Requests per second and burst the HTTP API lets through, per route: the public GET /api/health, the authenticated api (every other /api/ call) and the public pages ($default). Each is its own budget: the caps on what the API can cost."
  type = object({
    health = object({ rate_per_s = number, burst = number })
    api    = object({ rate_per_s = number, burst = number })
    pages  = object({ rate_per_s = number, burst = number })
  })
  default = {
    health = { rate_per_s = 2, burst = 5 }
    api    = { rate_per_s = 50, burst = 100 }
    pages  = { rate_per_s = 10, burst = 20 }
  }

  validation {
    condition     = alltrue([for t in values(var.throttle) : t.rate_per_s > 0 && t.burst >= 1])
    error_message = "Every throttle needs rate_per_s > 0 and burst >= 1."
  }
}

variable "log_retention_days" {
  description = "Days the function's and the API's access logs are kept in CloudWatch Logs."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
