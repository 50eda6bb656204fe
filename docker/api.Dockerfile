# The hevcq API on AWS Lambda: the dashboard and the API (hevcq.web) through Mangum, with
# the Lambda runtime interface client on a plain Python base. No ffmpeg: the API encodes
# nothing. Build the wheel first (`make build` writes dist/), then: make image
# Lambda runs linux/amd64 images here (modules/api sets architectures = ["x86_64"]).
# Base images are pinned to a patch release on one Debian release; bump both stages together.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hevcq
COPY dist/ /tmp/dist/
# The `lambda` extra brings mangum and awslambdaric; both ship wheels, so no compiler.
RUN whl="$(echo /tmp/dist/hevcq-*.whl)" \
    && /opt/hevcq/bin/pip install --only-binary=:all: "${whl}[lambda]"

FROM python:3.11.11-slim-bookworm AS api
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /tmp hevcq
# Same base image as the builder, so the venv's interpreter symlinks still resolve.
COPY --from=builder /opt/hevcq /opt/hevcq
# Lambda's file system is read-only but for /tmp: no bytecode writes, home in /tmp.
ENV PATH=/opt/hevcq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HEVCQ_LOG_FORMAT=json
WORKDIR /opt/hevcq
USER 10001:10001
ENTRYPOINT ["/opt/hevcq/bin/python", "-m", "awslambdaric"]
CMD ["hevcq.web.lambda_handler.handler"]
