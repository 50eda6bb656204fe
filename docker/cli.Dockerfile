# The hevcq CLI for the ingest side: runs next to the media, which is mounted at /media.
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/media" \
#     -v "$HOME/.config/hevcq:/home/hevcq/.config/hevcq:ro" -e AWS_PROFILE \
#     -v "$HOME/.aws:/home/hevcq/.aws:ro" hevcq-cli ingest /media
# Build the wheel first (`make build` writes dist/), then: make image

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hevcq
COPY dist/ /tmp/dist/
RUN /opt/hevcq/bin/pip install --only-binary=:all: /tmp/dist/hevcq-*.whl

FROM python:3.11.11-slim-bookworm AS cli
# No ffmpeg from Debian: the wheel's pinned static build (imageio-ffmpeg, in the venv
# copied below) is the one every local run uses too, so outputs match byte for byte.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/hevcq hevcq
COPY --from=builder /opt/hevcq /opt/hevcq
ENV PATH=/opt/hevcq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/media"]
WORKDIR /media
USER 10001:10001
ENTRYPOINT ["hevcq"]
CMD ["--help"]
