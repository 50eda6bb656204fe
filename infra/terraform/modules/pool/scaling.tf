locals {
  service_resource_id = "service/${var.cluster.name}/${aws_ecs_service.this.name}"
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = local.service_resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.deploy.min_tasks
  max_capacity       = var.deploy.max_tasks
}

# Backlog per task: (waiting + in flight) / running tasks. Counting in-flight messages
# keeps a task busy with a long encode from looking idle; the IF guards a zero task count.
resource "aws_appautoscaling_policy" "backlog" {
  name               = "${local.service_name}-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.deploy.backlog_per_task
    scale_out_cooldown = 60
    scale_in_cooldown  = var.scale_in_cooldown_s

    customized_metric_specification {
      metrics {
        id          = "visible"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.this.name
            }
          }
        }
      }

      metrics {
        id          = "in_flight"
        return_data = false
        metric_stat {
          stat = "Average"
          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesNotVisible"
            dimensions {
              name  = "QueueName"
              value = aws_sqs_queue.this.name
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
              value = aws_ecs_service.this.name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_task"
        label       = "Messages waiting or in flight per running task"
        expression  = "(visible + in_flight) / IF(tasks > 0, tasks, 1)"
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
  name               = "${local.service_name}-wake"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

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
  alarm_name          = "${local.service_name}-wake"
  alarm_description   = "Messages wait in ${aws_sqs_queue.this.name} and no worker consumes them."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.wake.arn]

  metric_query {
    id          = "idle_backlog"
    label       = "Waiting messages with nothing in flight"
    expression  = "IF(visible > 0 AND in_flight == 0, 1, 0)"
    return_data = true
  }

  metric_query {
    id = "visible"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = aws_sqs_queue.this.name }
      period      = 60
      stat        = "Maximum"
    }
  }

  metric_query {
    id = "in_flight"
    metric {
      namespace   = "AWS/SQS"
      metric_name = "ApproximateNumberOfMessagesNotVisible"
      dimensions  = { QueueName = aws_sqs_queue.this.name }
      period      = 60
      stat        = "Maximum"
    }
  }

  tags = var.tags
}
