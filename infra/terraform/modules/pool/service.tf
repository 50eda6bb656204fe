resource "aws_ecs_task_definition" "this" {
  count                    = var.deploy_service ? 1 : 0
  family                   = local.service_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.deploy.cpu)
  memory                   = tostring(var.deploy.memory_mib)
  execution_role_arn       = var.cluster.execution_role_arn
  task_role_arn            = aws_iam_role.task[0].arn

  ephemeral_storage {
    size_in_gib = var.deploy.ephemeral_storage_gib
  }

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Downloads and encodes go to a task volume (on the task's ephemeral storage), so the
  # image's own file system can stay read-only.
  volume {
    name = "scratch"
  }

  container_definitions = jsonencode([{
    name      = "worker"
    image     = var.image
    essential = true
    # Spelled out rather than inherited from the image: hevcq worker --pool <name>, and
    # --pool <other> for each pool a mixed service serves.
    entryPoint = ["hevcq", "worker"]
    command    = flatten([for p in local.served_pools : ["--pool", p]])
    environment = [
      for k, v in merge(var.environment, {
        HEVCQ_WORK_DIR = local.scratch_dir
        TMPDIR         = local.scratch_dir
      }) : { name = k, value = v }
    ]
    readonlyRootFilesystem = true
    mountPoints = [{
      sourceVolume  = "scratch"
      containerPath = local.scratch_dir
      readOnly      = false
    }]
    # An init process reaps ffmpeg's children and forwards SIGTERM to the worker.
    linuxParameters = { initProcessEnabled = true }
    stopTimeout     = local.stop_timeout_s
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.cluster.log_group_name
        awslogs-region        = local.region
        awslogs-stream-prefix = var.name
      }
    }
  }])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  count           = var.deploy_service ? 1 : 0
  name            = local.service_name
  cluster         = var.cluster.arn
  task_definition = aws_ecs_task_definition.this[0].arn
  desired_count   = var.deploy.min_tasks
  propagate_tags  = "SERVICE"

  # Spot first; with on-demand weight > 0 part of the pool keeps running when Spot
  # capacity is short (ECS does not move a pending Spot task to on-demand by itself).
  dynamic "capacity_provider_strategy" {
    for_each = var.deploy.spot ? {
      FARGATE_SPOT = var.spot_weights.spot
      FARGATE      = var.spot_weights.on_demand
    } : { FARGATE = 1 }
    content {
      capacity_provider = capacity_provider_strategy.key
      weight            = capacity_provider_strategy.value
    }
  }

  network_configuration {
    subnets          = var.network.subnet_ids
    security_groups  = var.network.security_group_ids
    assign_public_ip = var.network.assign_public_ip
  }

  tags = var.tags

  # Application Auto Scaling owns the task count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }
}

moved {
  from = aws_ecs_task_definition.this
  to   = aws_ecs_task_definition.this[0]
}

moved {
  from = aws_ecs_service.this
  to   = aws_ecs_service.this[0]
}
