"""The adapters to AWS (and to the embedded farm's endpoint): the only package that imports boto3."""
