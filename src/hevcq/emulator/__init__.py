"""What runs instead of AWS on one machine: moto's server behind a gate that answers only the
farm, with S3 bytes kept on disk and browser POST policies checked as S3 checks them.

Nothing here runs in the cloud; ``hevcq.aws`` holds the adapters that do.
"""
