# dlcli in a container. CPU by default; for NVIDIA GPUs build with --build-arg EXTRAS=gpu
#   docker build -t dlcli .
#   docker run --rm -v "$PWD:/work" -w /work dlcli run pipelines/quickstart.yaml
FROM python:3.11-slim

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/dlcli
COPY pyproject.toml README.md ./
COPY dlcli ./dlcli
RUN pip install --upgrade pip && \
    if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi

COPY pipelines ./pipelines
COPY data ./data

# Pretrained weights live in $KERAS_HOME/models; mount a volume there to reuse downloads
# or to seed them on machines without internet.
ENV KERAS_HOME=/cache/keras
VOLUME ["/cache"]

ENTRYPOINT ["dlcli"]
CMD ["--help"]
