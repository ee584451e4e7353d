"""deploy/: every Kubernetes manifest is valid against the Kubernetes schemas (offline, the
ones kubernetes-validate ships) and holds to the deployment's promises; compose.yaml parses
and runs two replicas on PostgreSQL with Prometheus scraping them."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from app.settings import Settings

DEPLOY = Path(__file__).parents[1] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml*"))
KUBERNETES_VERSION = "1.30.0"


def documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def manifests() -> dict[str, dict]:
    return {document["kind"]: document for path in MANIFESTS for document in documents(path)}


# The Prometheus Operator's PrometheusRule (monitoring.coreos.com/v1), which the Kubernetes
# schemas do not hold: its fields as the operator's CRD documents them, strict (no field it does
# not know), the metadata checked against Kubernetes' own ObjectMeta schema.
DURATION = (
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "labels": STRINGS,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": DURATION},
                                        "labels": STRINGS,
                                        "annotations": STRINGS,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def validate(document: dict) -> None:
    """Against the Kubernetes schemas, or the PrometheusRule's for that custom resource."""
    if document["kind"] != "PrometheusRule":
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        return
    import json

    import jsonschema
    from importlib_resources import files

    jsonschema.validate(document, PROMETHEUS_RULE)
    schemas = files("kubernetes_validate") / "kubernetes-json-schema"
    meta = schemas / f"v{KUBERNETES_VERSION}-local-strict" / "objectmeta-meta-v1.json"
    jsonschema.validate(document["metadata"], json.loads(meta.read_text()))


def pod_spec(document: dict) -> dict:
    """The pod a Deployment, a Job or a CronJob runs."""
    spec = document["spec"]
    if document["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def secret_keys_of(document: dict) -> dict[str, str]:
    """Environment variable -> the Secret key it comes from, in the pod's one container."""
    (container,) = pod_spec(document)["containers"]
    return {
        variable["name"]: variable["valueFrom"]["secretKeyRef"]["key"]
        for variable in container.get("env", [])
    }


def test_the_folder_holds_every_kind_the_deployment_needs():
    assert set(manifests()) == {
        "ConfigMap",
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Secret",
        "Service",
    }


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path):
    for document in documents(path):
        validate(document)


def test_a_broken_manifest_is_caught():
    """The validator is not a rubber stamp: a misspelled field fails it."""
    deployment = manifests()["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    broken = {**container, "readinesProbe": container["readinessProbe"]}
    deployment["spec"]["template"]["spec"]["containers"] = [broken]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_pods_run_as_non_root_on_a_read_only_root_with_both_probes():
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests)
    assert {"cpu", "memory"} <= set(limits)


def test_settings_come_from_the_config_map_and_secrets_from_the_secret():
    found = manifests()
    (container,) = found["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": found["ConfigMap"]["metadata"]["name"]}}
    ]
    from_secret = {
        variable["name"]: variable["valueFrom"]["secretKeyRef"] for variable in container["env"]
    }
    assert set(from_secret) == {"LEUKOLENS_API_KEY", "LEUKOLENS_DATABASE_URL"}
    secret = found["Secret"]
    assert {reference["name"] for reference in from_secret.values()} == {secret["metadata"]["name"]}
    used = {
        key
        for kind in ("Deployment", "Job", "CronJob")
        for key in secret_keys_of(found[kind]).values()
    }
    assert used == set(secret["stringData"])
    # Every ConfigMap key is a real setting, read as the server reads its environment.
    config = found["ConfigMap"]["data"]
    known = {f"LEUKOLENS_{name.upper()}" for name in Settings.model_fields}
    assert set(config) <= known
    Settings(**{key.removeprefix("LEUKOLENS_").lower(): value for key, value in config.items()})


def test_the_service_and_the_autoscaler_point_at_the_deployment():
    found = manifests()
    deployment = found["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert found["Service"]["spec"]["selector"].items() <= labels.items()
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert found["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2


def test_compose_runs_two_replicas_on_postgresql_scraped_by_prometheus():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [
        name
        for name, service in services.items()
        if service.get("image", "").startswith("leukolens") and "ports" in service
    ]
    assert len(replicas) == 2
    for name in replicas:
        service = services[name]
        url = service["environment"]["LEUKOLENS_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://leukolens_app:")
        assert "@postgres:5432/" in url
        assert service["read_only"] is True
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name, command in (("migrate", "migrate"), ("prune", "prune")):
        service = services[name]
        url = service["environment"]["LEUKOLENS_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://leukolens_owner:")
        assert f"python -m app.records {command}" in " ".join(service["command"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    init = services["postgres"]["volumes"]
    assert "./postgresql/roles.sql:/leukolens/roles.sql:ro" in init
    assert services["postgres"]["image"].startswith("postgres:15")
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert sorted(job["static_configs"][0]["targets"]) == sorted(
        f"{name}:8000" for name in replicas
    )


def test_the_alert_rule_watches_the_gauge_the_server_exports():
    """The rule reads leukolens_local_performance_alert, by model, as the app exports it; a
    misspelled field in it is caught like in any other manifest."""
    from app.web.prometheus_metrics import ServerMetrics

    rule = manifests()["PrometheusRule"]
    (group,) = rule["spec"]["groups"]
    below = next(r for r in group["rules"] if r["alert"] == "LeukoLensLocalPerformanceBelowCard")
    exported = {metric.name for metric in ServerMetrics().registry.collect()}
    assert "leukolens_local_performance_alert" in exported
    assert "leukolens_local_reviewed_cells" in exported
    assert below["expr"] == "max by (model) (leukolens_local_performance_alert) == 1"
    labels = rule["metadata"]["labels"]
    assert (
        labels.items()
        <= manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )
    broken = {**below, "fro": below["for"]}
    group_broken = {**group, "rules": [broken]}
    import jsonschema

    with pytest.raises(jsonschema.ValidationError, match="fro"):
        validate({**rule, "spec": {"groups": [group_broken]}})
    with pytest.raises(jsonschema.ValidationError, match="nme"):
        validate({**rule, "metadata": {"nme": "x"}})


def test_the_servers_hold_the_app_roles_url_and_only_maintenance_the_owners():
    """The servers connect as the least-privilege role; migrations (a Job)
    and the retention's pruning (a CronJob) run as the tables' owner, apart from them."""
    found = manifests()
    assert secret_keys_of(found["Deployment"])["LEUKOLENS_DATABASE_URL"] == "database-url"
    for kind, command in (("Job", "migrate"), ("CronJob", "prune")):
        (container,) = pod_spec(found[kind])["containers"]
        assert container["command"][:4] == ["python", "-m", "app.records", command]
        assert secret_keys_of(found[kind]) == {"LEUKOLENS_DATABASE_URL": "database-owner-url"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (migrate,) = pod_spec(found["Job"])["containers"]
    assert migrate["command"][-2:] == ["--grant-to", "leukolens_app"]
    secret = found["Secret"]["stringData"]
    assert "leukolens_app" in secret["database-url"]
    assert "leukolens_owner" in secret["database-owner-url"]
