locals {
  service_resource_id = "service/${var.cluster.name}/${local.service_name}"
  # One metric id per served queue: visible0, in_flight0, visible1, ...
  visible_ids   = [for i, q in local.served_queue_names : "visible${i}"]
  in_flight_ids = [for i, q in local.served_queue_names : "in_flight${i}"]
  visible_sum   = join(" + ", local.visible_ids)
  in_flight_sum = join(" + ", local.in_flight_ids)
  # Metric id => the queue and the SQS metric it reads, for both metric-math queries.
  queue_metrics = {
    for pair in setproduct(range(length(local.served_queue_names)), ["visible", "in_flight"]) :
    "${pair[1]}${pair[0]}" => {
      queue  = local.served_queue_names[pair[0]]
      metric = pair[1] == "visible" ? "ApproximateNumberOfMessagesVisible" : "ApproximateNumberOfMessagesNotVisible"
    }
  }
}

resource "aws_appautoscaling_target" "this" {
  count              = var.deploy_service ? 1 : 0
  service_namespace  = "ecs"
  resource_id        = local.service_resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.deploy.min_tasks
  max_capacity       = var.deploy.max_tasks

  depends_on = [aws_ecs_service.this]
}

# Backlog per task: (waiting + in flight) / running tasks, summed over every queue the
# service consumes (its own, plus the other pools' for a mixed service). Counting
# in-flight messages keeps a task busy with a long encode from looking idle; the IF
# guards a zero task count.
resource "aws_appautoscaling_policy" "backlog" {
  count              = var.deploy_service ? 1 : 0
  name               = "${local.service_name}-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.deploy.backlog_per_task
    scale_out_cooldown = 60
    scale_in_cooldown  = var.scale_in_cooldown_s

    customized_metric_specification {
      dynamic "metrics" {
        for_each = local.queue_metrics
        content {
          id          = metrics.key
          return_data = false
          metric_stat {
            stat = "Average"
            metric {
              namespace   = "AWS/SQS"
              metric_name = metrics.value.metric
              dimensions {
                name  = "QueueName"
                value = metrics.value.queue
              }
            }
          }
        }
      }

      metrics {
        id          = "tasks"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"
            dimensions {
              name  = "ClusterName"
              value = var.cluster.name
            }
            dimensions {
              name  = "ServiceName"
              value = local.service_name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_task"
        label       = "Messages waiting or in flight per running task"
        expression  = "(${local.visible_sum} + ${local.in_flight_sum}) / IF(tasks > 0, tasks, 1)"
        return_data = true
      }
    }
  }
}

# Target tracking multiplies the current count, so it never leaves zero tasks. This
# policy adds the first task: messages are waiting and none is in flight, which means no
# worker is consuming. (RunningTaskCount has no data points at zero tasks, so it cannot
# be the test.) Once a task runs, in_flight > 0 clears the alarm.
resource "aws_appautoscaling_policy" "wake" {
  count              = var.deploy_service ? 1 : 0
  name               = "${local.service_name}-wake"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  resource_id        = aws_appautoscaling_target.this[0].resource_id
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "wake" {
  count               = var.deploy_service ? 1 : 0
  alarm_name          = "${local.service_name}-wake"
  alarm_description   = "Messages wait in ${join(", ", local.served_queue_names)} and no worker consumes them."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.wake[0].arn]

  metric_query {
    id          = "idle_backlog"
    label       = "Waiting messages with nothing in flight"
    expression  = "IF((${local.visible_sum}) > 0 AND (${local.in_flight_sum}) == 0, 1, 0)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.queue_metrics
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/SQS"
        metric_name = metric_query.value.metric
        dimensions  = { QueueName = metric_query.value.queue }
        period      = 60
        stat        = "Maximum"
      }
    }
  }

  tags = var.tags
}

# Resources that became conditional on deploy_service keep their state.
moved {
  from = aws_appautoscaling_target.this
  to   = aws_appautoscaling_target.this[0]
}

moved {
  from = aws_appautoscaling_policy.backlog
  to   = aws_appautoscaling_policy.backlog[0]
}

moved {
  from = aws_appautoscaling_policy.wake
  to   = aws_appautoscaling_policy.wake[0]
}

moved {
  from = aws_cloudwatch_metric_alarm.wake
  to   = aws_cloudwatch_metric_alarm.wake[0]
}
