# The hevcq worker for ECS Fargate: `hevcq worker --pool NAME`, with the pinned ffmpeg.
# Build the wheel first (`make build` writes dist/), then: make image
# Base images are pinned to a patch release on one Debian release; bump both stages together.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hevcq
COPY dist/ /tmp/dist/
# Every dependency ships manylinux wheels, so no compiler is needed even here.
RUN /opt/hevcq/bin/pip install --only-binary=:all: /tmp/dist/hevcq-*.whl

FROM python:3.11.11-slim-bookworm AS worker
# No ffmpeg from Debian: the wheel's pinned static build (imageio-ffmpeg, in the venv
# copied below) is the one every local run uses too, so outputs match byte for byte.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /scratch hevcq
# Same base image as the builder, so the venv's interpreter symlinks still resolve.
COPY --from=builder /opt/hevcq /opt/hevcq
# The pool files travel inside the wheel (hevcq/workers), so HEVCQ_WORKERS_DIR stays unset.
ENV PATH=/opt/hevcq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEVCQ_LOG_FORMAT=json \
    HEVCQ_WORK_DIR=/scratch \
    TMPDIR=/scratch
# ECS mounts a task volume here so the root file system can be read-only.
WORKDIR /scratch
USER 10001:10001
ENTRYPOINT ["hevcq", "worker"]
