"""Units and the AWS limits hevcq works within, each defined once with its source."""

from __future__ import annotations

MiB = 1024 * 1024

# The embedded endpoint's unit of a request body, read or written (hevcq.emulator.s3disk,
# hevcq.emulator.postpolicy). Small on purpose: every request in flight holds about two, and
# 64 KiB moved a farm's concurrent PUTs and GETs faster than 1 MiB did (48 PUTs and 16 GETs
# at once, side by side: 82-86 MiB against 170-190 MiB of endpoint RSS at the peak, in
# 11.5-12 s against 18.5-25 s).
BODY_CHUNK = 64 * 1024

# Amazon SQS Developer Guide, "Amazon SQS message quotas" and queue attributes.
MAX_VISIBILITY_TIMEOUT_S = 12 * 3600  # counted from the receipt of the message
MAX_WAIT_TIME_S = 20  # the longest long poll
MAX_RETENTION_S = 14 * 24 * 3600
MIN_RETENTION_S = 60

# Amazon S3 User Guide, "Uploading objects": the largest single PUT; larger is multipart.
MAX_PUT_BYTES = 5 * 1024 * MiB
# Amazon S3 API Reference, CopyObject: "You can create a copy of your object up to 5 GB in
# size in a single atomic action"; larger copies are multipart (UploadPartCopy).
MAX_COPY_BYTES = 5 * 1024 * MiB
