"""Tracing is on only with an OTLP endpoint in the standard variables; off,
no SDK is even loaded and the helpers do nothing."""

from __future__ import annotations

import pytest

from leo_mesh.settings import TracingSettings
from leo_mesh.telemetry import tracing
from tests.unit.test_layers import modules_loaded_by


@pytest.mark.parametrize(
    "env, enabled",
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_only_an_endpoint_turns_tracing_on(monkeypatch, env, enabled):
    for name in TracingSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert TracingSettings().enabled is enabled


def test_off_the_helpers_do_nothing():
    assert tracing.configure("api-server", TracingSettings(otel_exporter_otlp_endpoint=None)) is False
    assert tracing.tracer is None
    with tracing.span("dispatch", parent="00-" + "1" * 32 + "-" + "2" * 16 + "-01") as span:
        assert span is None
        assert tracing.traceparent() is None and tracing.outgoing_metadata() == []


@pytest.mark.parametrize("module", ["api_server.__main__", "mock_ai_server.__main__", "callback_server.__main__"])
def test_a_service_that_does_not_trace_loads_no_sdk(module):
    assert not any(name.startswith("opentelemetry.sdk") for name in modules_loaded_by(module))
