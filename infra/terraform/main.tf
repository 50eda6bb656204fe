data "aws_caller_identity" "current" {}

locals {
  workers_dir = coalesce(var.workers_dir, "${path.module}/../../workers")

  # Defaults of hevcq.pools.QueueSpec and hevcq.pools.Deploy: a pool file may leave any
  # field out. The `pools` output lets a test compare these with the Python models.
  queue_defaults = {
    visibility_timeout_s = 120
    max_attempts         = 3
    max_receive_count    = 12
    retention_s          = 4 * 24 * 3600
    dlq_retention_s      = 14 * 24 * 3600
  }
  deploy_defaults = {
    cpu                   = 2048
    memory_mib            = 4096
    min_tasks             = 0
    max_tasks             = 4
    spot                  = true
    backlog_per_task      = 1
    ephemeral_storage_gib = 40
  }

  pool_files = {
    for f in fileset(local.workers_dir, "*.{yaml,yml}") :
    replace(f, "/\\.ya?ml$/", "") => yamldecode(file("${local.workers_dir}/${f}"))
  }
  pools = {
    for name, spec in local.pool_files : name => {
      queue  = merge(local.queue_defaults, try(spec.queue, {}))
      deploy = merge(local.deploy_defaults, try(spec.deploy, {}))
    }
  }

  # Pools making one file; a ladder pool (hevcq.media.ladder) neither copies nor is copied.
  file_pools = [for name, spec in local.pool_files : name if try(spec.ladder, null) == null]
  # The pool that may replace originals (hevcq.pools.primary_pool): the file pool without an
  # output suffix in an automatic container. A pool making its identical encode copies its
  # outputs instead.
  primaries = [
    for name, spec in local.pool_files : name
    if try(spec.output_suffix, "") == "" && contains(local.file_pools, name)
    && try(spec.encode.container, "auto") == "auto"
  ]
  primary = length(local.primaries) == 1 ? local.primaries[0] : null

  # With mixed_service, the one pool whose module deploys the service for every pool.
  mixed_host = var.mixed_service ? coalesce(local.primary, sort(keys(local.pools))[0]) : null

  bucket_name = coalesce(var.bucket_name, "${var.name_prefix}-media-${data.aws_caller_identity.current.account_id}-${var.region}")

  # <account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]
  ecr_match = try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com[^/]*/([^:@]+)", var.image), null)
  ecr_repository_arns = local.ecr_match == null ? [] : [
    "arn:aws:ecr:${local.ecr_match[1]}:${local.ecr_match[0]}:repository/${local.ecr_match[2]}",
  ]

  # What every hevcq process needs to find the farm; the CLI writes it to its env file.
  hevcq_settings = {
    HEVCQ_BUCKET            = module.storage.bucket_name
    HEVCQ_NAME_PREFIX       = var.name_prefix
    HEVCQ_REGION            = var.region
    HEVCQ_UPLOADS_TOPIC_ARN = module.storage.uploads_topic_arn
    HEVCQ_EVENTS_TOPIC_ARN  = module.messaging.events_topic_arn
    HEVCQ_RESULTS_QUEUE_URL = module.messaging.results_queue_url
    HEVCQ_LEDGER_TABLE      = module.ledger.table_name
  }
}

check "pool_files" {
  assert {
    condition     = length(local.pools) > 0
    error_message = "No pool files (*.yaml, *.yml) in ${local.workers_dir}."
  }

  assert {
    condition     = alltrue([for name, spec in local.pool_files : try(spec.name, name) == name])
    error_message = "A pool file's name field must match its file name."
  }
}

module "messaging" {
  source = "./modules/messaging"

  name_prefix         = var.name_prefix
  results_retention_s = var.results_retention_s
  alert_emails        = var.alert_emails
}

module "storage" {
  source = "./modules/storage"

  name_prefix      = var.name_prefix
  bucket_name      = local.bucket_name
  kms_key_arn      = module.messaging.kms_key_arn
  todo_expiry_days = var.todo_expiry_days
  done_expiry_days = var.done_expiry_days
  force_destroy    = var.force_destroy_bucket
  play_origins     = var.play_origins
}

module "ledger" {
  source = "./modules/ledger"

  name_prefix         = var.name_prefix
  kms_key_arn         = module.messaging.kms_key_arn
  deletion_protection = var.ledger_deletion_protection
}

module "cluster" {
  source = "./modules/cluster"

  name_prefix         = var.name_prefix
  log_retention_days  = var.log_retention_days
  ecr_repository_arns = local.ecr_repository_arns
}

module "pool" {
  source   = "./modules/pool"
  for_each = local.pools

  name_prefix       = var.name_prefix
  name              = each.key
  queue             = each.value.queue
  deploy            = each.value.deploy
  uploads_topic_arn = module.storage.uploads_topic_arn
  image             = var.image
  environment       = merge(local.hevcq_settings, { HEVCQ_LOG_FORMAT = "json" })

  farm = {
    bucket_arn       = module.storage.bucket_arn
    ledger_table_arn = module.ledger.table_arn
    events_topic_arn = module.messaging.events_topic_arn
    kms_key_arn      = module.messaging.kms_key_arn
    alerts_topic_arn = module.messaging.alerts_topic_arn
  }

  cluster = {
    name               = module.cluster.cluster_name
    arn                = module.cluster.cluster_arn
    execution_role_arn = module.cluster.execution_role_arn
    log_group_name     = module.cluster.log_group_name
  }

  network = {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
    assign_public_ip   = var.assign_public_ip
  }

  spot_weights        = var.spot_weights
  scale_in_cooldown_s = var.scale_in_cooldown_s
  copy_from_pool = (
    local.primary != null && each.key != local.primary && contains(local.file_pools, each.key)
    ? local.primary : null
  )
  # Which renditions share the primary's encode is decided per source (a 1080p rendition
  # of a 1920x1080 source, say), so the primary may write any other file pool's outputs.
  copy_to_pools = each.key == local.primary ? sort([for n in local.file_pools : n if n != each.key]) : []

  deploy_service = local.mixed_host == null || each.key == local.mixed_host
  serves_pools   = each.key == local.mixed_host ? sort([for n in keys(local.pools) : n if n != each.key]) : []
}

module "api" {
  source = "./modules/api"
  count  = var.api_enabled ? 1 : 0

  name_prefix        = var.name_prefix
  image              = var.api_image
  environment        = local.hevcq_settings
  enable_cognito     = var.enable_cognito
  api_token          = var.api_token
  play_key           = var.api_play_key
  raw_policy         = var.api_raw_policy
  log_retention_days = var.log_retention_days

  farm = {
    bucket_arn       = module.storage.bucket_arn
    ledger_table_arn = module.ledger.table_arn
    kms_key_arn      = module.messaging.kms_key_arn
    queue_arns       = [for pool in module.pool : pool.queue_arn]
    dlq_arns         = [for pool in module.pool : pool.dlq_arn]
  }
}
