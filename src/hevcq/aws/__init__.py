"""The adapters to AWS and to the embedded farm's endpoint: the only package importing boto3."""
