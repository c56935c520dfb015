"""deploy/k8s: the base and the production overlay validate against the
Kubernetes schemas (bundled with kubernetes-validate: no cluster, no network)
and KEDA's (its CRDs as cloudcoil's models) and agree with the services:
commands, ports, variables, probes, shutdown, Services, autoscaling (the AI
worker pools' on the queue), disruption budgets and NetworkPolicies."""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil

import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject

import mock_ai_server.settings
from leo_mesh.rules import Kind, Model
from tests import deploy_contract as contract
from tests import kustomize_build
from tests.kustomize_build import pod_spec

K8S = contract.DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "production"
IMAGE = "leo-generation-mesh"
# The oldest Kubernetes we support (native gRPC probes, autoscaling/v2,
# policy/v1) and the newest whose schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
# Workload name -> `python -m` module of its one container.
MODULES = {
    **{name: service.module for name, service in contract.BY_DEPLOYMENT.items()},
    "leo-migrate": "leo_mesh.db.migrate",
}
DEPLOYMENTS = list(contract.BY_DEPLOYMENT.items())
WORKER_POOLS = contract.BY_NAME["mock-ai-server"].deployments
KEDA_API_VERSION = "keda.sh/v1alpha1"


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize_build.build(BASE)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> list[dict]:
    """The production overlay, with its git-ignored database.env made from the example."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("database.env"))
    example = copy / "overlays" / "production" / "database.env.example"
    shutil.copy(example, example.with_suffix(""))
    return kustomize_build.build(copy / "overlays" / "production")


@pytest.fixture(scope="module", params=["base", "overlay"])
def built(request) -> list[dict]:
    return request.getfixturevalue(request.param)


def named(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]


def one(objects: list[dict], kind: str, name: str) -> dict:
    (obj,) = named(objects, kind, name)
    return obj


def container(workload: dict) -> dict:
    (only,) = pod_spec(workload)["containers"]
    return only


def ports(workload: dict) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container(workload)["ports"]}


def plain_env(workload: dict) -> dict[str, str]:
    return {var["name"]: var["value"] for var in container(workload).get("env", []) if "value" in var}


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if pod_spec(o) is not None]


# --- Schemas ---


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schema(built, version):
    assert built
    for obj in built:
        if obj["apiVersion"] == KEDA_API_VERSION:
            continue  # a custom resource: test_scaled_objects_validate_against_keda
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {error.message}")


def test_schema_validation_catches_a_wrong_field(base):
    deployment = one(base, "Deployment", "api-server")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_objects(base):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in base}
    assert {name for kind, name in kinds if kind == "Deployment"} == set(contract.BY_DEPLOYMENT) | {"envoy"}
    # The mesh reaches each AI worker at its own address (its heartbeats): no Service.
    services = {service.name for service in contract.SERVICES if service.deployments == (service.name,)}
    assert {name for kind, name in kinds if kind == "Service"} == services | {"envoy"}
    assert {name for kind, name in kinds if kind == "Job"} == {"leo-migrate"}
    assert {name for kind, name in kinds if kind == "HorizontalPodAutoscaler"} == {"api-server"}
    assert {name for kind, name in kinds if kind == "ScaledObject"} == set(WORKER_POOLS)
    assert {name for kind, name in kinds if kind == "ConfigMap"} == {"envoy-config", "leo-otel"}
    # The database URL is not in the base: an overlay (or kubectl) makes the Secret.
    assert not named(base, "Secret")


# --- Workloads and the services' settings ---


@pytest.mark.parametrize("name", MODULES)
def test_runs_an_importable_module_from_our_image(base, name):
    workload = one(base, "Job" if name == "leo-migrate" else "Deployment", name)
    assert container(workload)["command"] == ["python", "-m", MODULES[name]]
    assert importlib.util.find_spec(MODULES[name]) is not None
    assert container(workload)["image"].partition(":")[0] == IMAGE


def test_overlay_pulls_the_released_image(overlay):
    images = {c["image"] for w in workloads(overlay) for c in pod_spec(w)["containers"]}
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"[\w.-]+(/[\w.-]+)+/" + IMAGE + r":\d+\.\d+\.\d+", image)


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS, ids=[name for name, _ in DEPLOYMENTS])
def test_ports_are_the_settings(built, name, service):
    deployment = one(built, "Deployment", name)
    env = plain_env(deployment)
    assert ports(deployment) == {"grpc": service.default_port, "metrics": service.metrics_port}
    assert env[service.port_var] == str(service.default_port)
    assert env[service.metrics_port_var] == str(service.metrics_port)
    assert env["LISTEN_HOST"] == "0.0.0.0"
    assert env["OTEL_SERVICE_NAME"] == service.name


def defined_variables(objects: list[dict], workload: dict) -> list[str]:
    """Every variable the container gets, envFrom first, as Kubernetes sets them."""
    names = []
    for source in container(workload).get("envFrom", []):
        names += one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    return names + [var["name"] for var in container(workload).get("env", [])]


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS, ids=[name for name, _ in DEPLOYMENTS])
def test_sets_only_variables_the_service_reads(built, name, service):
    deployment = one(built, "Deployment", name)
    # POD_NAME and POD_IP only feed other variables ($(POD_NAME), $(POD_IP)).
    assert set(defined_variables(built, deployment)) - {"POD_NAME", "POD_IP"} <= service.variables_read()


def test_variable_references_are_defined_before_use(built):
    for workload in workloads(built):
        env = container(workload).get("env", [])
        for i, var in enumerate(env):
            for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                assert ref in [earlier["name"] for earlier in env[:i]], (workload["metadata"]["name"], ref)


def test_tracing_settings_are_the_standard_variables(built):
    otel = one(built, "ConfigMap", "leo-otel")["data"]
    assert set(otel) <= contract.OTEL_VARIABLES
    assert re.fullmatch(r"http://[\w.-]+:4317", otel["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert otel["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0 < float(otel["OTEL_TRACES_SAMPLER_ARG"]) <= 1


def test_overlay_samples_a_tenth_of_traces(overlay):
    assert one(overlay, "ConfigMap", "leo-otel")["data"]["OTEL_TRACES_SAMPLER_ARG"] == "0.1"


def database_url_source(workload: dict) -> dict | None:
    for var in container(workload).get("env", []):
        if var["name"] == "DATABASE_URL":
            return var["valueFrom"]["secretKeyRef"]
    return None


def test_database_url_comes_from_the_secret_where_it_is_read(built):
    readers = {s.name for s in contract.SERVICES if s.uses_database} | {"leo-migrate"}
    for workload in workloads(built):
        source = database_url_source(workload)
        if workload["metadata"]["name"] in readers:
            assert source == {"name": "leo-database", "key": "DATABASE_URL"}
        else:
            assert source is None


def test_overlay_makes_the_database_secret(overlay):
    secret = one(overlay, "Secret", "leo-database")
    url = base64.b64decode(secret["data"]["DATABASE_URL"]).decode()
    assert url.startswith("postgresql://") and "sslmode=require" in url
    assert (OVERLAY / ".gitignore").read_text().split() == ["database.env"]


# --- Probes and shutdown ---


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS, ids=[name for name, _ in DEPLOYMENTS])
def test_grpc_probes_ask_the_health_service(built, name, service):
    probe_of = container(one(built, "Deployment", name))
    for kind in ("startupProbe", "livenessProbe"):
        # "" is SERVING while the process is up, even while it drains.
        assert probe_of[kind]["grpc"] == {"port": service.default_port}
    # Its own name is SERVING only when ready, NOT_SERVING from SIGTERM on.
    assert probe_of["readinessProbe"]["grpc"] == {"port": service.default_port, "service": service.grpc_service}


def prestop_sleep_s(workload: dict) -> float:
    command = container(workload)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2
    return float(command[1])


@pytest.mark.parametrize(("name", "service"), DEPLOYMENTS, ids=[name for name, _ in DEPLOYMENTS])
def test_termination_grace_covers_the_drain(built, name, service):
    deployment = one(built, "Deployment", name)
    if name in WORKER_POOLS:
        # No Service to leave first: on SIGTERM the worker tells the mesh at
        # once, finishes its running jobs, then its in-flight calls.
        assert "lifecycle" not in container(deployment)
        drain_s = pool_settings(deployment).mock_ai_drain_timeout_s
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= drain_s + contract.GRPC_GRACE_S
        return
    needed = prestop_sleep_s(deployment) + contract.GRPC_GRACE_S
    if service.module == "api_server":
        needed += contract.api_server_last_rounds_s()
        # Envoy re-resolves the headless Service every 5 s (its DNS refresh).
        assert prestop_sleep_s(deployment) > 5
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= needed


def test_envoy_grace_covers_its_prestop(built):
    envoy = container(one(built, "Deployment", "envoy"))
    *_, settle_s, drain_s = envoy["lifecycle"]["preStop"]["exec"]["command"]
    command = envoy["command"]
    assert float(command[command.index("--drain-time-s") + 1]) == float(drain_s)
    grace = pod_spec(one(built, "Deployment", "envoy"))["terminationGracePeriodSeconds"]
    assert grace > float(settle_s) + float(drain_s)


def test_every_container_has_requests_and_limits(built):
    for workload in workloads(built):
        resources = container(workload)["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, workload["metadata"]


def test_pods_meet_the_restricted_pod_security_standard(built):
    for workload in workloads(built):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for each in spec["containers"]:
            assert each["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }


def test_overlay_namespace_enforces_the_restricted_standard(overlay):
    namespace = one(overlay, "Namespace", "leo-mesh")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_image_user_is_the_pods_user(base):
    uid = re.search(r"useradd [^\n]*--uid (\d+)", (contract.ROOT / "Dockerfile").read_text())[1]
    assert {pod_spec(w)["securityContext"]["runAsUser"] for w in workloads(base)} == {int(uid)}


# --- Metrics ---


def test_scrape_annotations_name_the_metrics_port(built):
    for deployment in named(built, "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        name = deployment["metadata"]["name"]
        assert annotations["prometheus.io/scrape"] == "true"
        if name == "envoy":
            assert int(annotations["prometheus.io/port"]) == ports(deployment)["admin"] == contract.ENVOY_ADMIN_PORT
            assert annotations["prometheus.io/path"] == "/stats/prometheus"
        else:
            assert int(annotations["prometheus.io/port"]) == ports(deployment)["metrics"]
            assert annotations["prometheus.io/path"] == "/metrics"


# --- Services, addresses, autoscaling, disruption budgets ---


def selected(objects: list[dict], selector: dict[str, str]) -> list[str]:
    """Names of the workloads whose pods carry every label of selector."""
    return [
        w["metadata"]["name"]
        for w in workloads(objects)
        if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_each_service_selects_its_deployment_by_a_named_port(built):
    for service in named(built, "Service"):
        name = service["metadata"]["name"]
        assert selected(built, service["spec"]["selector"]) == [name]
        assert one(built, "Deployment", name)["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        for port in service["spec"]["ports"]:
            assert ports(one(built, "Deployment", name))[port["targetPort"]] == port["port"]


def service_port(objects: list[dict], address: str) -> dict:
    host, port = address.rsplit(":", 1)
    (match,) = [p for p in one(objects, "Service", host)["spec"]["ports"] if p["port"] == int(port)]
    return match


@pytest.mark.parametrize("pool", WORKER_POOLS)
def test_addresses_point_at_the_services(built, pool):
    api = plain_env(one(built, "Deployment", "api-server"))
    worker = one(built, "Deployment", pool)
    mock_ai = plain_env(worker)
    # The api_server learns each worker's address from its heartbeats: the pod's own.
    assert "AI_SERVER_ADDRESS" not in api
    assert mock_ai["MOCK_AI_ADVERTISE_ADDRESS"] == f"$(POD_IP):{contract.BY_NAME['mock-ai-server'].default_port}"
    pod_ip = next(var for var in container(worker)["env"] if var["name"] == "POD_IP")
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert mock_ai["CALLBACK_SERVER_ADDRESS"] == f"callback-server:{contract.BY_NAME['callback-server'].default_port}"
    assert service_port(built, mock_ai["CALLBACK_SERVER_ADDRESS"])["targetPort"] == "grpc"


def test_api_server_service_is_headless_for_envoy(built):
    # Envoy's STRICT_DNS cluster balances over the A records: one per ready pod.
    assert one(built, "Service", "api-server")["spec"]["clusterIP"] == "None"


def test_autoscaler_owns_the_api_server_count(built):
    hpa = one(built, "HorizontalPodAutoscaler", "api-server")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-server"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert "replicas" not in one(built, "Deployment", "api-server")["spec"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container(one(built, "Deployment", "api-server"))["resources"]["requests"]


def test_overlay_scales_up(base, overlay):
    for name in ("envoy", "callback-server"):
        assert one(overlay, "Deployment", name)["spec"]["replicas"] > one(base, "Deployment", name)["spec"]["replicas"]
    hpa = one(overlay, "HorizontalPodAutoscaler", "api-server")["spec"]
    assert hpa["minReplicas"] > one(base, "HorizontalPodAutoscaler", "api-server")["spec"]["minReplicas"]
    assert one(overlay, "Service", "envoy")["spec"]["type"] == "LoadBalancer"
    assert {o["metadata"].get("namespace") for o in overlay if o["kind"] != "Namespace"} == {"leo-mesh"}


def test_disruption_budgets_leave_room_to_drain(built):
    budgets = named(built, "PodDisruptionBudget")
    assert {b["metadata"]["name"] for b in budgets} == {"api-server", "callback-server", "envoy"}
    for budget in budgets:
        name = budget["metadata"]["name"]
        assert selected(built, budget["spec"]["selector"]["matchLabels"]) == [name]
        hpa = named(built, "HorizontalPodAutoscaler", name)
        replicas = hpa[0]["spec"]["minReplicas"] if hpa else one(built, "Deployment", name)["spec"]["replicas"]
        # A node drain may always evict one pod.
        assert 1 <= budget["spec"]["minAvailable"] < replicas


def test_migration_job_runs_once_to_completion(built):
    job = one(built, "Job", "leo-migrate")
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["ttlSecondsAfterFinished"] > 0


# --- NetworkPolicies ---

NAMESPACE = "leo-mesh"


def pods(objects: list[dict]) -> dict[str, dict]:
    """Every pod the manifests run, plus Prometheus, a stranger in the
    namespace, a pod of another namespace and a client outside the cluster."""
    ours = {
        w["metadata"]["name"]: {
            "namespace": NAMESPACE,
            "labels": w["spec"]["template"]["metadata"]["labels"],
            "ports": {p["name"]: p["containerPort"] for p in container(w).get("ports", [])},
        }
        for w in workloads(objects)
    }
    return ours | {
        "prometheus": {"namespace": "monitoring", "labels": {"app.kubernetes.io/name": "prometheus"}},
        "stranger": {"namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "debug"}},
        "other-namespace": {"namespace": "other", "labels": {"app.kubernetes.io/name": "envoy"}},
        "outside": {"namespace": None, "labels": {}},
    }


def peer_matches(peer: dict, source: dict) -> bool:
    assert set(peer) <= {"podSelector", "namespaceSelector"}, peer  # no ipBlock here
    if source["namespace"] is None:
        return False
    if "namespaceSelector" in peer:
        labels = {"kubernetes.io/metadata.name": source["namespace"]}
        if not peer["namespaceSelector"]["matchLabels"].items() <= labels.items():
            return False
    elif source["namespace"] != NAMESPACE:
        return False
    return peer.get("podSelector", {}).get("matchLabels", {}).items() <= source["labels"].items()


def allowed(objects: list[dict], source: dict, target: dict, port: int) -> bool:
    """Whether the NetworkPolicies let source open a connection to target's port."""
    policies = [
        p
        for p in named(objects, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).items() <= target["labels"].items()
    ]
    assert all(p["spec"]["policyTypes"] == ["Ingress"] for p in policies)
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            sources_ok = "from" not in rule or any(peer_matches(peer, source) for peer in rule["from"])
            rule_ports = [target["ports"].get(p["port"], p["port"]) for p in rule.get("ports", [])]
            if sources_ok and (not rule_ports or port in rule_ports):
                return True
    return False


def test_network_policies_allow_exactly_the_mesh_paths(built):
    everyone = pods(built)
    grpc = {s.name: s.default_port for s in contract.SERVICES}
    expected = {
        # The edge takes anyone, from outside the cluster too.
        ("envoy", contract.ENVOY_LISTEN_PORT): set(everyone),
        ("api-server", grpc["api-server"]): {"envoy"},
        **{(pool, grpc["mock-ai-server"]): {"api-server"} for pool in WORKER_POOLS},
        ("callback-server", grpc["callback-server"]): set(WORKER_POOLS),
        ("envoy", contract.ENVOY_ADMIN_PORT): {"prometheus"},
        **{(name, s.metrics_port): {"prometheus"} for name, s in DEPLOYMENTS},
    }
    unused_port = 12345
    for target in (w["metadata"]["name"] for w in workloads(built)):
        for port in [*everyone[target]["ports"].values(), unused_port]:
            may = {name for name, source in everyone.items() if allowed(built, source, everyone[target], port)}
            assert may == expected.get((target, port), set()), (target, port)
    # Outgoing traffic is open: to the database, the collector, DNS, webhooks.
    assert all("Egress" not in p["spec"]["policyTypes"] for p in named(built, "NetworkPolicy"))


def test_network_policy_check_catches_an_open_port(base):
    stranger = {"namespace": NAMESPACE, "labels": {}}
    api = {"namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "api-server"}, "ports": {"grpc": 50051}}
    assert not allowed(base, stranger, api, 50051)
    without_default_deny = [o for o in base if o["metadata"]["name"] != "default-deny-ingress"]
    without_any = [
        o for o in without_default_deny if o["kind"] != "NetworkPolicy" or o["metadata"]["name"] != "api-server"
    ]
    assert allowed(without_any, stranger, api, 50051)


def test_the_kubernetes_docs_give_the_commands():
    text = (contract.ROOT / "docs" / "operations.md").read_text()
    for command in ("kubectl apply -k deploy/k8s/overlays/production", "database.env", "leo-migrate"):
        assert command in text


# --- The AI worker pools and their autoscaling (KEDA) ---


def pool_settings(deployment: dict) -> mock_ai_server.settings.Settings:
    """The mock AI's settings as the pod's plain variables make them (their values validated)."""
    fields = mock_ai_server.settings.Settings.model_fields
    given = {name.lower(): value for name, value in plain_env(deployment).items() if name.lower() in fields}
    return mock_ai_server.settings.Settings(**given)


def test_each_pool_serves_its_own_kinds_and_together_every_kind(built):
    kinds = [pool_settings(one(built, "Deployment", pool)).kinds for pool in WORKER_POOLS]
    assert all(len(pool_kinds) == 1 for pool_kinds in kinds)
    assert frozenset().union(*kinds) == frozenset(Kind) and sum(map(len, kinds)) == len(Kind)
    for pool in WORKER_POOLS:
        assert pool_settings(one(built, "Deployment", pool)).models == frozenset(Model)
        # KEDA owns the count; an apply must not reset it.
        assert "replicas" not in one(built, "Deployment", pool)["spec"]


def test_scaled_objects_validate_against_keda(built):
    for obj in named(built, "ScaledObject"):
        assert obj["apiVersion"] == KEDA_API_VERSION
        parsed = ScaledObject.model_validate(obj)
        # Every field known to KEDA's schema: a misspelt one would be dropped here.
        assert parsed.model_dump(by_alias=True, exclude_unset=True) == obj


def test_keda_validation_catches_a_wrong_field(base):
    scaled = one(base, "ScaledObject", "mock-ai-image")
    misspelt = {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}
    assert ScaledObject.model_validate(misspelt).model_dump(by_alias=True, exclude_unset=True) != misspelt
    with pytest.raises(ValueError):
        ScaledObject.model_validate({**scaled, "spec": {**scaled["spec"], "minReplicaCount": "one"}})


def trigger_query(scaled: dict) -> tuple[str, dict]:
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    return trigger["metadata"]["query"], trigger["metadata"]


@pytest.mark.parametrize("pool", WORKER_POOLS)
def test_each_pool_scales_on_its_kinds_queue_and_busy_slots(built, pool):
    scaled = one(built, "ScaledObject", pool)
    deployment = one(built, "Deployment", pool)
    assert scaled["spec"]["scaleTargetRef"] == {"name": deployment["metadata"]["name"]}
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    assert spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]
    query, metadata = trigger_query(scaled)
    assert re.fullmatch(r"http://[\w.-]+:\d+", metadata["serverAddress"])
    settings = pool_settings(deployment)
    (kind,) = settings.kinds
    found = contract.selectors(query)
    for selector in found:
        assert selector.metric and contract.metric_allowed(selector.metric), selector
        contract.check_matchers(selector)
    assert {(s.metric, m) for s in found for m in s.matchers} == {
        ("leo_queue_depth", ("kind", "=", kind.value)),
        ("leo_worker_slots", ("kinds", "=", kind.value)),
        ("leo_worker_slots", ("state", "=", "busy")),
    }
    # One worker's share of the demand is what it runs at once.
    assert float(metadata["threshold"]) == settings.mock_ai_slots
    # Scaling down removes one draining worker at a time, after a steady spell.
    down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policies"])
