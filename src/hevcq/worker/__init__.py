"""One worker: the receive loop, the job runner, heartbeat and lease; never imports boto3."""
