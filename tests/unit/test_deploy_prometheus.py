"""deploy/prometheus: the compose scrape config, the alerting rules, their
promtool tests and the Kubernetes scrape config agree with the services and
the metric catalog."""

from __future__ import annotations

import re

import pytest
import yaml

import api_server.settings
from tests import deploy_contract as contract
from tests import kustomize_build

PROMETHEUS = contract.DEPLOY / "prometheus"
RULES_PATH = PROMETHEUS / "alerts.yml"
OPERATIONS = (contract.ROOT / "docs" / "operations.md").read_text()


def load(name: str) -> dict:
    return yaml.safe_load((PROMETHEUS / name).read_text())


RULES = [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]
ALERTS = {rule["alert"]: rule for rule in RULES}


def threshold(alert: str) -> float:
    """The number an alert's top-level `>` comparison is against."""
    import promql_parser

    expr = promql_parser.parse(ALERTS[alert]["expr"])
    assert str(expr.op) == ">" and isinstance(expr.rhs, promql_parser.NumberLiteral)
    return expr.rhs.val


# --- compose: prometheus.yml ---


def test_compose_config_scrapes_every_service_at_its_metrics_port():
    config = load("prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == contract.JOBS
    for service in contract.SERVICES:
        (sd,) = jobs[service.name]["dns_sd_configs"]
        assert sd == {"names": list(service.compose_services), "type": "A", "port": service.metrics_port}
        assert jobs[service.name].get("metrics_path", "/metrics") == "/metrics"
    envoy = jobs[contract.ENVOY_JOB]
    assert envoy["metrics_path"] == "/stats/prometheus"
    assert envoy["dns_sd_configs"] == [{"names": ["envoy"], "type": "A", "port": contract.ENVOY_ADMIN_PORT}]


def test_compose_config_loads_the_rules():
    assert load("prometheus.yml")["rule_files"] == [RULES_PATH.name]


# --- alerts.yml ---


def test_rules_are_alerts_with_unique_names():
    assert all("alert" in rule and "record" not in rule for rule in RULES)
    assert len(ALERTS) == len(RULES)
    assert all(re.fullmatch(r"Leo[A-Z][A-Za-z]+", name) for name in ALERTS)


@pytest.mark.parametrize("name", ALERTS)
def test_alert_tells_the_on_call_what_it_means(name):
    rule = ALERTS[name]
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert set(rule["annotations"]) == {"summary", "description"}
    assert len(rule["annotations"]["description"]) > 150  # what it means and what to check
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert f"`{name}`" in OPERATIONS, f"docs/operations.md must explain {name}"


@pytest.mark.parametrize("name", ALERTS)
def test_alert_uses_only_catalogued_series_and_labels(name):
    for selector in contract.selectors(ALERTS[name]["expr"]):
        assert selector.metric and contract.metric_allowed(selector.metric), selector
        contract.check_matchers(selector)


def test_label_checks_catch_a_wrong_value():
    wrong = contract.selectors('leo_generations_finished_total{status="DONE"}')[0]
    with pytest.raises(AssertionError):
        contract.check_matchers(wrong)
    for lowercase in ('leo_queue_depth{kind="image"}', 'leo_worker_slots{kinds="VIDEO,IMAGE"}'):
        with pytest.raises(AssertionError):
            contract.check_matchers(contract.selectors(lowercase)[0])
    contract.check_matchers(contract.selectors('leo_worker_slots{kinds="IMAGE,VIDEO",state="busy"}')[0])
    unknown_label = contract.selectors('leo_dispatch_backlog_due{grpc_code="OK"}')[0]
    with pytest.raises(AssertionError):
        contract.check_matchers(unknown_label)


def test_stuck_pending_thresholds_follow_the_settings():
    settings = api_server.settings.Settings()
    assert threshold("LeoGenerationsPastCompletionDeadline") > settings.completion_deadline_s
    # The longest a generation can stay PENDING: every attempt waits its
    # deadline, plus the retry backoff between them.
    backoff = sum(
        min(settings.dispatch_backoff_cap_s, settings.dispatch_backoff_base_s * 2**n)
        for n in range(settings.dispatch_max_attempts - 1)
    )
    budget = settings.dispatch_max_attempts * (settings.completion_deadline_s + settings.dispatch_rpc_timeout_s)
    assert threshold("LeoGenerationsPendingBeyondRetryBudget") >= budget + backoff


def test_the_queue_alert_names_the_waiting_model_and_kind():
    import promql_parser

    expr = promql_parser.parse(ALERTS["LeoQueueWaitTooLong"]["expr"])
    assert isinstance(expr.lhs, promql_parser.AggregateExpr) and str(expr.lhs.op) == "max"
    assert set(expr.lhs.modifier.labels) == {"model", "kind"}
    assert [s.metric for s in contract.selectors(ALERTS["LeoQueueWaitTooLong"]["expr"])] == [
        "leo_queue_oldest_wait_seconds"
    ]
    assert threshold("LeoQueueWaitTooLong") == 60 and ALERTS["LeoQueueWaitTooLong"]["for"] == "5m"


def test_every_service_has_an_unreachable_alert():
    down = {
        value
        for rule in RULES
        for selector in contract.selectors(rule["expr"])
        if selector.metric == "up"
        for label, operator, value in selector.matchers
        if label == "job"
        for value in contract.matcher_values(operator, value)
    }
    assert down == contract.JOBS
    assert {"LeoCallbackServiceDown", "LeoDispatcherStalled", "LeoGenerationFailureRateHigh"} <= set(ALERTS)


# --- tests/alerts.test.yml (promtool test rules) ---


def test_promtool_tests_make_every_alert_fire_and_stay_quiet():
    suite = load("tests/alerts.test.yml")
    assert [(PROMETHEUS / "tests" / path).resolve() for path in suite["rule_files"]] == [RULES_PATH]
    checks = [check for case in suite["tests"] for check in case["alert_rule_test"]]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fired == quiet == set(ALERTS)
    for check in checks:
        for alert in check["exp_alerts"]:
            assert alert["exp_labels"]["severity"] == ALERTS[check["alertname"]]["labels"]["severity"]


# --- kubernetes.yml: the scrape job for a cluster ---


def relabel(labels: dict[str, str], rules: list[dict]) -> dict[str, str] | None:
    """Prometheus' relabelling with keep, drop and replace; None when dropped."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        assert action in {"keep", "drop", "replace"}, action
        regex = re.compile(rule.get("regex", "(.*)"))
        source = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        match = regex.fullmatch(source)
        if (action == "keep" and not match) or (action == "drop" and match):
            return None
        if action == "replace" and match:
            replacement = re.sub(r"\$\{?(\d+)\}?", r"\\\1", rule.get("replacement", "$1"))
            labels[rule["target_label"]] = match.expand(replacement)
    return labels


def pod_meta(pod: dict, container_ports: list[dict]) -> list[dict[str, str]]:
    """The __meta_kubernetes_pod_* labels Kubernetes service discovery gives each container port."""

    def name(key: str) -> str:
        return re.sub(r"[^a-zA-Z0-9_]", "_", key)

    base = {
        "__meta_kubernetes_namespace": "leo-mesh",
        "__meta_kubernetes_pod_name": pod["name"],
        "__meta_kubernetes_pod_ip": "10.0.0.7",
    }
    base |= {f"__meta_kubernetes_pod_label_{name(k)}": v for k, v in pod["labels"].items()}
    base |= {f"__meta_kubernetes_pod_annotation_{name(k)}": v for k, v in pod["annotations"].items()}
    return [
        base
        | {
            "__address__": f"10.0.0.7:{port['containerPort']}",
            "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
            "__meta_kubernetes_pod_container_port_name": port["name"],
        }
        for port in container_ports
    ]


@pytest.fixture(scope="module")
def k8s_base() -> list[dict]:
    return kustomize_build.build(contract.DEPLOY / "k8s" / "base")


def test_kubernetes_scrape_job_finds_each_pod_by_its_annotations(k8s_base):
    (job,) = load("kubernetes.yml")["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    deployments = [obj for obj in k8s_base if obj["kind"] == "Deployment"]
    # A job per service: the pools of AI workers share theirs.
    job_of = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for d in deployments
    }
    assert set(job_of.values()) == contract.JOBS
    for deployment in deployments:
        template = deployment["spec"]["template"]
        pod = {"name": deployment["metadata"]["name"] + "-abc12", **template["metadata"]}
        (container,) = template["spec"]["containers"]
        targets = [
            t for t in (relabel(meta, job["relabel_configs"]) for meta in pod_meta(pod, container["ports"])) if t
        ]
        # One target a pod, whatever its number of ports, named as in compose.
        assert len({t["__address__"] for t in targets}) == 1
        target = targets[0]
        annotations = template["metadata"]["annotations"]
        assert target["__address__"] == f"10.0.0.7:{annotations['prometheus.io/port']}"
        assert target["__metrics_path__"] == annotations["prometheus.io/path"]
        assert target["job"] == job_of[deployment["metadata"]["name"]]
        assert target["instance"] == pod["name"]


def test_kubernetes_scrape_job_skips_pods_without_the_annotation():
    (job,) = load("kubernetes.yml")["scrape_configs"]
    pod = {"name": "other", "labels": {"app.kubernetes.io/name": "api-server"}, "annotations": {}}
    assert all(
        relabel(meta, job["relabel_configs"]) is None for meta in pod_meta(pod, [{"name": "x", "containerPort": 1}])
    )
