variable "name_prefix" {
  description = "Prefix of every resource name; the queues are \"<name_prefix>-<name>\" and \"<name_prefix>-<name>-dlq\"."
  type        = string
}

variable "name" {
  description = "Pool name, the stem of its file in workers/."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,30}$", var.name))
    error_message = "A pool name is 1 to 31 of a-z, 0-9, _ and -, starting with a letter or digit."
  }
}

variable "queue" {
  description = "The pool file's queue section, defaults filled in."
  type = object({
    visibility_timeout_s = number
    max_receive_count    = number
    retention_s          = number
    dlq_retention_s      = number
  })

  validation {
    # The DLQ keeps the original enqueue time: it must outlive the source queue.
    condition     = var.queue.dlq_retention_s > var.queue.retention_s
    error_message = "queue.dlq_retention_s must be longer than queue.retention_s."
  }
}

variable "deploy" {
  description = "The pool file's deploy section, defaults filled in."
  type = object({
    cpu                   = number
    memory_mib            = number
    min_tasks             = number
    max_tasks             = number
    spot                  = bool
    backlog_per_task      = number
    ephemeral_storage_gib = number
  })

  validation {
    condition     = var.deploy.min_tasks <= var.deploy.max_tasks
    error_message = "deploy.min_tasks must not exceed deploy.max_tasks."
  }
}

variable "uploads_topic_arn" {
  description = "Topic carrying the bucket's TODO/ events; the pool's queue subscribes to it."
  type        = string
}

variable "farm" {
  description = "Shared resources the pool's task role is scoped to."
  type = object({
    bucket_arn       = string
    ledger_table_arn = string
    events_topic_arn = string
    kms_key_arn      = string
    alerts_topic_arn = string
  })
}

variable "cluster" {
  description = "The ECS cluster, its task execution role and the workers' log group."
  type = object({
    name               = string
    arn                = string
    execution_role_arn = string
    log_group_name     = string
  })
}

variable "image" {
  description = "Worker container image (docker/worker.Dockerfile)."
  type        = string
}

variable "environment" {
  description = "HEVCQ_* variables for the worker container."
  type        = map(string)
}

variable "network" {
  description = "Where tasks run: subnets and security groups (egress to AWS APIs needed)."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
    assign_public_ip   = bool
  })
}

variable "spot_weights" {
  description = "Capacity provider weights of a Spot pool: tasks split spot:on_demand."
  type = object({
    spot      = number
    on_demand = number
  })
  default = { spot = 3, on_demand = 1 }
}

variable "scale_in_cooldown_s" {
  description = "Seconds between scale-in steps of the backlog policy."
  type        = number
  default     = 300
}

variable "copy_from_pool" {
  description = "Another pool whose committed outputs this pool's workers may copy (the farm's primary pool, for a job whose encode is the same); null for none."
  type        = string
  default     = null
}

variable "copy_to_pools" {
  description = "Pools whose outputs this pool's workers write when they share its encode (the primary pool copies its committed output for them at its commit); empty for none."
  type        = list(string)
  default     = []
}

variable "deploy_service" {
  description = "Deploy this pool's ECS service, its scaling and its task role; false when a farm's one mixed service (another pool module's serves_pools) takes this pool's work."
  type        = bool
  default     = true
}

variable "serves_pools" {
  description = "Other pools whose queues this pool's service also consumes, as a farm's one mixed service: its tasks run `hevcq worker --pool <name> --pool <each>`, its role may do each pool's work and its scaling counts every queue. Empty for a service of this pool alone."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
