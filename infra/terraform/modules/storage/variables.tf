variable "name_prefix" {
  description = "Prefix of every resource name; the uploads topic is \"<name_prefix>-uploads\"."
  type        = string
}

variable "bucket_name" {
  description = "Name of the media bucket (globally unique)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the uploads topic; its policy must let s3.amazonaws.com use it."
  type        = string
}

variable "todo_expiry_days" {
  description = "Days after which a leftover upload under TODO/ is deleted."
  type        = number
  default     = 14

  validation {
    condition     = var.todo_expiry_days >= 1
    error_message = "todo_expiry_days must be at least 1."
  }
}

variable "done_expiry_days" {
  description = "Days after which an unfetched output under DONE/ is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.done_expiry_days >= 1
    error_message = "done_expiry_days must be at least 1."
  }
}

variable "play_origins" {
  description = "Web origins whose players may read outputs by presigned GET; [] for none."
  type        = list(string)
  default     = ["*"]
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
