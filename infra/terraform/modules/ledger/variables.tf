variable "name_prefix" {
  description = "Prefix of every resource name; the table is \"<name_prefix>-ledger\"."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the table; null uses the AWS managed key for DynamoDB."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the table (turn off before a deliberate teardown)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the table."
  type        = map(string)
  default     = {}
}
