# Chaperone as a sidecar: the app in the same pod/compose project sets
#   OPENAI_BASE_URL=http://127.0.0.1:8080/v1
# and mounts its policy at /etc/chaperone/policy.yaml (hot-reloaded on change).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CHAPERONE_HOME=/var/lib/chaperone \
    CHAPERONE_POLICY=/etc/chaperone/policy.yaml \
    CHAPERONE_HOST=0.0.0.0 \
    CHAPERONE_PORT=8080

WORKDIR /opt/chaperone
COPY pyproject.toml README.md constraints.txt ./
COPY proxy ./proxy
COPY plugins ./plugins
COPY backends ./backends
RUN pip install -c constraints.txt . \
 && useradd --system --uid 10001 --home-dir /var/lib/chaperone --create-home chaperone \
 && mkdir -p /etc/chaperone
COPY proxy/policies/default.yaml /etc/chaperone/policy.yaml
COPY policies /opt/chaperone/policies

USER chaperone
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD python -c "import os,urllib.request as u; u.urlopen(f'http://127.0.0.1:{os.environ[\"CHAPERONE_PORT\"]}/healthz', timeout=2)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["chaperone"]
CMD ["serve"]
