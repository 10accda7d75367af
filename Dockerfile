# sustain's container image: the service (`sustain serve`), the exporters and the inference units.
#
#   docker build -t sustain:dev .
#   docker run --rm -p 8000:8000 -e SUSTAIN_WRITE_TOKENS=w -e SUSTAIN_READ_TOKENS=r sustain:dev
#
# Two stages: the first builds a virtual environment with sustain and its Elasticsearch and Redis extras
# (a wheel, not an editable install, so the web UI's files under sustain/dashboards/web travel as package
# data); the second copies that environment onto a slim Python and runs it as an unprivileged user.
# The service listens on 0.0.0.0 in the container, which sustain refuses without bearer tokens: set
# SUSTAIN_WRITE_TOKENS and SUSTAIN_READ_TOKENS (comma-separated). compose/docker-compose.yml does.

ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/sustain
COPY pyproject.toml README.md ./
COPY sustain ./sustain
RUN /opt/sustain/bin/pip install ".[elasticsearch,aiu]" \
    && /opt/sustain/bin/python -c "import importlib.resources as r; assert r.files('sustain.dashboards').joinpath('web').is_dir()"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sustain" \
      org.opencontainers.image.description="Model monitoring: capture, aggregate, detect drift, alert and act." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/sustain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SUSTAIN_HOST=0.0.0.0 \
    SUSTAIN_PORT=8000
RUN groupadd --system --gid 10001 sustain \
    && useradd --system --uid 10001 --gid sustain --home-dir /var/lib/sustain --shell /usr/sbin/nologin sustain \
    && mkdir -p /var/lib/sustain/data /var/lib/sustain/exports \
    && chown -R sustain:sustain /var/lib/sustain
COPY --from=build /opt/sustain /opt/sustain
USER 10001:10001
WORKDIR /var/lib/sustain
VOLUME ["/var/lib/sustain/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SUSTAIN_PORT', '8000')}/readyz\", timeout=4)"]
ENTRYPOINT ["sustain"]
CMD ["serve"]
