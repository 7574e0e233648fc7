# dlcli in a container: `dlcli` is the entry point; data, runs and caches are volumes.
#   docker build -t dlcli .                                   # CPU (tensorflow-cpu)
#   docker build --build-arg EXTRAS=gpu -t dlcli:gpu .        # NVIDIA GPUs
#   docker run --rm -v "$PWD/data:/data" -v "$PWD/runs:/runs" dlcli run /data/pipeline.yaml
#   docker run --rm --gpus all -v ... dlcli:gpu run /data/pipeline.yaml
# README.md ("Containers") has the rest; tests/test_container.py lints this file with hadolint
# and runs its install step in a fresh virtual environment against the README's install.
#
# GPUs: EXTRAS=gpu installs pyproject's `gpu` extra, tensorflow[and-cuda], whose nvidia-* wheels
# carry the CUDA and cuDNN libraries TensorFlow was built against. So one slim base serves both
# images and the install is the README's own; a CUDA base image would add a second copy of CUDA
# (gigabytes) whose version must be matched to TensorFlow's by hand. The host needs only the
# NVIDIA driver and the NVIDIA Container Toolkit (`docker run --gpus all`).
#
# Two stages: the build stage installs into a virtual environment, and the image copies that
# environment alone, without the source tree and pip's build of dlcli's wheel.

FROM python:3.11-slim AS build

# Extras of pyproject.toml, comma-separated: gpu, tfds, librosa, export.
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/dlcli
ENV PATH=/opt/dlcli/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY dlcli ./dlcli
# The README's install, word for word: `pip install .`, or `pip install ".[gpu]"` with EXTRAS=gpu.
# On Linux x86-64 dlcli's own requirements pull tensorflow-cpu beside the gpu extra's tensorflow,
# and both unpack the same `tensorflow` package: the check refuses an image where the CPU-only
# files were unpacked last.
# DL3013 (pin versions): this installs the project itself; its dependencies' ranges are in
# pyproject.toml, exactly as for the README's install.
# hadolint ignore=DL3013
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && case ",$EXTRAS," in \
      *,gpu,*) python -c "import tensorflow as tf; assert tf.test.is_built_with_cuda(), \
'tensorflow-cpu replaced tensorflow[and-cuda]: no CUDA in this image'" ;; \
    esac

FROM python:3.11-slim

# libsndfile: soundfile's wheel bundles it on common platforms; this copy serves the others.
# DL3008 (pin apt versions): Debian replaces a package's version in its archive with each
# security update, so a pinned version stops installing; the base image fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/dlcli /opt/dlcli
# The quickstart and its data, to try the image with:
#   docker run --rm -v "$PWD/runs:/runs" dlcli run /opt/dlcli/examples/pipelines/quickstart.yaml
COPY pipelines /opt/dlcli/examples/pipelines
COPY data/digits /opt/dlcli/examples/data/digits

# Runs go to /runs (`--runs-dir`'s default); decoded-data caches to /cache/dlcli and Keras's
# downloaded weights to /cache/keras: mount one volume at /cache and later runs reuse both.
# Matplotlib's cache goes to /tmp, so any --user works without a writable home.
ENV PATH=/opt/dlcli/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    DLCLI_RUNS_DIR=/runs \
    DLCLI_CACHE_DIR=/cache/dlcli \
    KERAS_HOME=/cache/keras \
    MPLCONFIGDIR=/tmp/matplotlib

# A user of its own; the volumes are writable by any user (sticky, as /tmp), so
# `docker run --user "$(id -u):$(id -g)"` writes runs that belong to you.
RUN useradd --create-home --uid 1000 --user-group dlcli \
    && mkdir -p /data /runs /cache \
    && chmod 1777 /data /runs /cache
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
WORKDIR /data
VOLUME ["/data", "/runs", "/cache"]

ENTRYPOINT ["dlcli"]
CMD ["--help"]
