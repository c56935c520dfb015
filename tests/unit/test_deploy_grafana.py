"""deploy/grafana: the provisioned datasources and dashboard parse, and every
query uses series the services (or Prometheus, or Envoy) export."""

from __future__ import annotations

import json

import promql_parser
import pytest
import yaml

from tests import deploy_contract as contract

GRAFANA = contract.DEPLOY / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "leo-mesh.json").read_text())
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
TARGETS = [(panel["title"], target) for panel in PANELS for target in panel["targets"]]


def datasources() -> dict[str, dict]:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    return {source["uid"]: source for source in config["datasources"]}


def used_series() -> set[str]:
    return {
        selector.metric
        for _, target in TARGETS
        for selector in contract.selectors(contract.without_grafana_macros(target["expr"]))
    }


def test_datasources():
    sources = datasources()
    assert {uid: s["type"] for uid, s in sources.items()} == {"prometheus": "prometheus", "jaeger": "jaeger"}
    assert [uid for uid, s in sources.items() if s.get("isDefault")] == ["prometheus"]


def test_dashboard_identity():
    assert DASHBOARD["uid"] == "leo-mesh"
    assert isinstance(DASHBOARD["schemaVersion"], int)
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


@pytest.mark.parametrize(("title", "target"), TARGETS, ids=[f"{t} {x['refId']}" for t, x in TARGETS])
def test_query_parses_and_uses_catalogued_series(title, target):
    assert target["datasource"]["uid"] in datasources()
    for selector in contract.selectors(contract.without_grafana_macros(target["expr"])):
        assert selector.metric and contract.metric_allowed(selector.metric), (title, selector)
        contract.check_matchers(selector)


def test_panels_use_their_datasource_and_fit_the_grid():
    cells = set()
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    assert all(panel["datasource"]["uid"] == "prometheus" for panel in PANELS)
    assert all(panel.get("description") for panel in PANELS)


def test_dashboard_shows_what_operators_asked_for():
    assert {
        "grpc_server_started_total",  # request rate per method
        "grpc_server_handling_seconds_bucket",  # p50 / p99 per method
        "grpc_server_handled_total",
        "leo_dispatch_backlog_due",
        "leo_dispatch_in_flight",
        "leo_generation_lifetime_seconds_bucket",  # time to final state
        "leo_generations_finished_total",  # failures
        "leo_dispatch_retries_total",
        "leo_dispatch_timeouts_total",
        "leo_watch_streams_open",
        "leo_webhook_deliveries_total",
        "leo_webhook_delivery_seconds_bucket",
        "leo_db_pool_connections_in_use",
        "leo_db_pool_requests_waiting",
        "leo_queue_depth",  # the queue: depth, oldest wait
        "leo_queue_oldest_wait_seconds",
        "leo_worker_slots",  # slot utilisation
        "leo_owner_running",  # each owner's share
    } <= used_series()
    exprs = " ".join(target["expr"] for _, target in TARGETS)
    for quantile in ("0.5", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le, job, grpc_method)" in exprs


def test_every_gauge_of_the_catalog_is_on_the_dashboard():
    gauges = {name for name, metric in contract.catalog().items() if metric.kind == "gauge"}
    assert gauges <= used_series()


def test_dashboards_are_provisioned_from_the_mounted_folder():
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False


def test_generation_panels_tell_images_from_videos():
    """Both generation counters are labelled with the generation's kind
    (IMAGE or VIDEO): the panels on them split by it and name it."""
    for title in ("Created", "Finished by status and kind"):
        (panel,) = [panel for panel in PANELS if panel["title"] == title]
        (target,) = panel["targets"]
        aggregate = promql_parser.parse(contract.without_grafana_macros(target["expr"]))
        assert isinstance(aggregate, promql_parser.AggregateExpr), title
        assert "kind" in aggregate.modifier.labels, title
        assert "{{kind}}" in target["legendFormat"], title
