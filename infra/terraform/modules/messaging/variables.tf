variable "name_prefix" {
  description = "Prefix of every resource name (\"<name_prefix>-events\", \"<name_prefix>-results\", ...)."
  type        = string
}

variable "results_retention_s" {
  description = "How long job results wait in the results queue for `hevcq fetch` (seconds, 60 to 1209600)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.results_retention_s >= 60 && var.results_retention_s <= 1209600
    error_message = "results_retention_s must be between 60 and 1209600 (the SQS limits)."
  }
}

variable "alert_emails" {
  description = "Addresses subscribed to the alerts topic (each must confirm by mail)."
  type        = list(string)
  default     = []
}

variable "key_deletion_window_days" {
  description = "Waiting period before the KMS key is deleted after a destroy (7 to 30 days)."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
