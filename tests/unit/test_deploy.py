"""The deployment files (deploy/) hold what Dagster, Docker Compose and the Helm chart accept.

The production instance settings are read through Dagster's own instance schema and each
storage class's own config schema, with the connection taken from the environment as in a
deployment; the run limits are the ones Dagster's run queue will apply. The test needs
dagster-postgres (the deployment's dependency) and is skipped without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTANCE_DIR = DEPLOY / "dagster"
PG_ENV = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "6543",
          "DAGSTER_PG_USER": "tracker", "DAGSTER_PG_PASSWORD": "s3cret",
          "DAGSTER_PG_DB": "dagster_prod"}
SYMBOL_TAG = "dagster/partition/symbol"


@pytest.fixture
def pg_env(monkeypatch):
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)


def _ref(base_dir: Path, config_dir: Path = INSTANCE_DIR):
    from dagster._core.instance.ref import InstanceRef

    return InstanceRef.from_dir(str(base_dir), config_dir=str(config_dir))


def _processed(data) -> dict:
    """The config of a ConfigurableClassData after its class's own schema (env resolved),
    without constructing the class (which would connect)."""
    from dagster._config import process_config
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._serdes.config_class import class_from_code_pointer

    klass = class_from_code_pointer(data.module_name, data.class_name)
    result = process_config(klass.config_type(), yaml.safe_load(data.config_yaml))
    if not result.success:
        raise DagsterInvalidConfigError(f"{data.class_name} config", result.errors,
                                        data.config_yaml)
    return result.value


def _concurrency(ref):
    from dagster._core.instance.config import ConcurrencyConfig
    from dagster._core.run_coordinator import QueuedRunCoordinator

    coordinator = ref.run_coordinator_data.rehydrate(QueuedRunCoordinator)
    return coordinator, ConcurrencyConfig.from_concurrency_settings(
        ref.settings.get("concurrency", {}), coordinator.get_run_queue_config())


# --------------------------------------------------------------------------- dagster.yaml


def test_production_instance_stores_everything_in_postgres(pg_env, tmp_path):
    pytest.importorskip("dagster_postgres")
    from dagster._core.instance.config import dagster_instance_config

    dagster_instance_config(str(INSTANCE_DIR))  # the instance schema as a whole
    ref = _ref(tmp_path)
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres", "DagsterPostgresStorage")
    assert {(d.module_name, d.class_name) for d in (
        ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data)} == {
        ("dagster_postgres", "PostgresRunStorage"),
        ("dagster_postgres", "PostgresEventLogStorage"),
        ("dagster_postgres", "PostgresScheduleStorage")}
    for data in (ref.storage_data, ref.run_storage_data, ref.event_storage_data,
                 ref.schedule_storage_data):
        db = _processed(data)["postgres_db"]
        assert (db["hostname"], db["port"], db["username"], db["password"],
                db["db_name"]) == ("db.internal", 6543, "tracker", "s3cret", "dagster_prod")
        # psycopg2, the driver dagster-postgres depends on (SQLAlchemy's default for
        # postgresql:// is psycopg 3, under which its NOTIFY statements fail).
        assert db["scheme"] == "postgresql+psycopg2"


def test_production_instance_needs_the_connection_from_the_environment(pg_env, tmp_path,
                                                                        monkeypatch):
    pytest.importorskip("dagster_postgres")
    from dagster._core.errors import DagsterInvalidConfigError

    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_HOST"):
        _processed(_ref(tmp_path).storage_data)


def test_production_runs_four_at_once_one_per_symbol(pg_env, tmp_path):
    from dagster._core.run_coordinator import QueuedRunCoordinator

    coordinator, concurrency = _concurrency(_ref(tmp_path))
    assert isinstance(coordinator, QueuedRunCoordinator)
    assert coordinator.dequeue_interval_seconds == 1
    queue = concurrency.run_queue_config
    assert queue.max_concurrent_runs == 4
    assert queue.tag_concurrency_limits == [
        {"key": SYMBOL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "sentiment/symbol", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
        {"key": "sentiment/symbols", "limit": 1}]
    # The writers' pool no longer serialises every run.
    assert concurrency.pool_config.default_pool_limit == 4


def test_the_run_queue_holds_back_a_second_run_of_the_same_symbol_only(pg_env, tmp_path):
    from dagster import DagsterRun
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    _, concurrency = _concurrency(_ref(tmp_path))

    def run(symbol: str) -> DagsterRun:
        return DagsterRun(job_name="market_data_job",
                          tags={SYMBOL_TAG: symbol, "dagster/partition": f"2022-06-01|{symbol}"})

    counter = TagConcurrencyLimitsCounter(concurrency.run_queue_config.tag_concurrency_limits,
                                          [run("BTCUSDT")])
    assert counter.is_blocked(run("BTCUSDT"))
    assert not counter.is_blocked(run("ETHUSDT"))
    assert not counter.is_blocked(DagsterRun(job_name="live_update_job"))


def test_local_instance_keeps_one_duckdb_writer(tmp_path):
    """dagster_home/ (DuckDB, `make demo`/`make up`) is unchanged: SQLite, one writer."""
    ref = _ref(tmp_path, ROOT / "dagster_home")
    assert ref.storage_data.class_name == "DagsterSqliteStorage"
    coordinator, concurrency = _concurrency(ref)
    assert concurrency.pool_config.default_pool_limit == 1
    assert coordinator.dequeue_interval_seconds == 1


# --------------------------------------------------------------------------- docker compose


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def test_compose_services_and_the_files_they_use():
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "user_code", "webserver", "daemon", "dashboard"} <= set(services)
    for name, service in services.items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT, name
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)

    grpc = services["user_code"]["command"]
    module = grpc[grpc.index("-m") + 1]
    assert module == "orchestration.definitions"
    assert importlib.util.find_spec(module) is not None
    dashboard = services["dashboard"]["command"]
    assert (ROOT / dashboard[dashboard.index("run") + 1]).is_file()

    # The image puts deploy/dagster/ at DAGSTER_HOME; the workspace names the code server.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    home = services["webserver"]["environment"]["DAGSTER_HOME"]
    assert f"COPY deploy/dagster/ {home}/" in dockerfile
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == f"{home}/workspace.yaml"
    workspace = yaml.safe_load((INSTANCE_DIR / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] == "user_code"
    assert str(server["port"]) == grpc[grpc.index("-p") + 1]


def test_compose_pairs_the_production_instance_with_the_postgres_warehouse():
    services = _compose()["services"]
    postgres = services["postgres"]["environment"]
    for name in ("user_code", "webserver", "daemon"):
        env = services[name]["environment"]
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
        assert set(PG_ENV) <= set(env), name
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert env["DAGSTER_PG_USER"] == postgres["POSTGRES_USER"]
        assert env["DAGSTER_PG_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
        assert env["DAGSTER_PG_DB"] == postgres["POSTGRES_DB"]
    # Every process that opens the warehouse (the runs execute in the code server) opens
    # PostgreSQL: the production instance admits several writers, which DuckDB cannot take.
    for name in ("user_code", "stream", "dashboard"):
        env = services[name]["environment"]
        assert env["SENTIMENT_DB"].startswith("postgresql://"), name
        assert env["SENTIMENT_DB"].endswith("@postgres:5432/sentiment"), name
        assert env["SENTIMENT_STREAM_DIR"] == "/var/lib/sentiment/stream"
    assert "CREATE DATABASE sentiment" in (DEPLOY / "postgres" / "init.sql").read_text()


# --------------------------------------------------------------------------- helm values

#: The keys of the official chart's values this file may use, copied from the chart's
#: values schema (helm/dagster/schema/schema/charts in the Dagster repository: values.py,
#: subschema/{postgresql,global_,daemon,run_launcher,concurrency,telemetry}.py and
#: dagster_user_deployments/subschema/user_deployments.py). A dict lists the allowed keys
#: below it; None admits any value.
CHART_KEYS = {
    "global": {"postgresqlSecretName": None, "dagsterHome": None,
               "serviceAccountName": None, "celeryConfigSecretName": None},
    "postgresql": {"image": None, "enabled": None, "postgresqlHost": None,
                   "postgresqlUsername": None, "postgresqlPassword": None,
                   "postgresqlDatabase": None, "postgresqlParams": None,
                   "postgresqlScheme": None, "service": {"port": None}},
    "generatePostgresqlPasswordSecret": None,
    "dagster-user-deployments": {
        "enabled": None, "enableSubchart": None, "imagePullSecrets": None,
        "deployments": [{
            "name": None, "image": {"repository": None, "tag": None, "pullPolicy": None},
            "dagsterApiGrpcArgs": None, "codeServerArgs": None,
            "includeConfigInLaunchedRuns": {"enabled": None}, "port": None, "env": None,
            "envConfigMaps": None, "envSecrets": None, "annotations": None,
            "nodeSelector": None, "affinity": None, "tolerations": None,
            "podSecurityContext": None, "securityContext": None, "resources": None,
            "livenessProbe": None, "readinessProbe": None, "startupProbe": None,
            "labels": None, "volumeMounts": None, "volumes": None, "schedulerName": None}],
    },
    "runLauncher": {"type": None, "config": {"k8sRunLauncher": {
        "image": None, "imagePullPolicy": None, "jobNamespace": None,
        "loadInclusterConfig": None, "kubeconfigFile": None, "envConfigMaps": None,
        "envSecrets": None, "envVars": None, "volumeMounts": None, "volumes": None,
        "labels": None, "failPodOnRunFailure": None, "resources": None,
        "schedulerName": None, "securityContext": None, "runK8sConfig": None}}},
    "dagsterDaemon": {"runCoordinator": {"enabled": None, "type": None, "config": {
        "queuedRunCoordinator": {"maxConcurrentRuns": None, "tagConcurrencyLimits": None,
                                 "dequeueIntervalSeconds": None, "dequeueNumWorkers": None,
                                 "dequeueUseThreads": None}}}},
    "concurrency": {"enabled": None,
                    "pools": {"defaultLimit": None, "granularity": None,
                              "opGranularityRunBuffer": None},
                    "runs": {"maxConcurrentRuns": None, "tagConcurrencyLimits": [
                        {"key": None, "value": None, "limit": None}]}},
    "telemetry": {"enabled": None},
}


def _unknown_keys(values, allowed, path="") -> list[str]:
    if allowed is None:
        return []
    if isinstance(allowed, list):
        return [k for i, item in enumerate(values)
                for k in _unknown_keys(item, allowed[0], f"{path}[{i}]")]
    out = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        out += [where] if key not in allowed else _unknown_keys(value, allowed[key], where)
    return out


def _helm() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def test_helm_values_use_only_keys_of_the_chart():
    values = _helm()
    assert _unknown_keys(values, CHART_KEYS) == []
    # The walker itself: a misspelt key is reported with its path.
    assert _unknown_keys({"runLauncher": {"config": {"k8sRunLauncher": {"envSecret": []}}}},
                         CHART_KEYS) == ["runLauncher.config.k8sRunLauncher.envSecret"]


def test_helm_values_one_pod_per_run_on_postgres_with_this_code_location():
    values = _helm()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    pg = values["postgresql"]
    assert pg["enabled"] is False  # an external PostgreSQL
    assert pg["postgresqlHost"] and pg["postgresqlUsername"] and pg["postgresqlDatabase"]
    assert isinstance(pg["service"]["port"], int)
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert pg["postgresqlScheme"] == "postgresql+psycopg2"

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "orchestration.definitions"
    assert importlib.util.find_spec("orchestration.definitions") is not None
    # The warehouse URL reaches the code server and the run pods, from a Secret.
    warehouse = {"name": "sentiment-warehouse"}
    assert warehouse in deployment["envSecrets"]
    assert warehouse in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]


def test_helm_and_compose_instances_apply_the_same_limits(pg_env, tmp_path):
    values = _helm()
    _, concurrency = _concurrency(_ref(tmp_path))
    chart = values["concurrency"]
    assert chart["enabled"] is True
    assert chart["runs"]["maxConcurrentRuns"] == concurrency.run_queue_config.max_concurrent_runs
    assert chart["runs"]["tagConcurrencyLimits"] == list(
        concurrency.run_queue_config.tag_concurrency_limits)
    assert chart["pools"]["defaultLimit"] == concurrency.pool_config.default_pool_limit
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["dequeueIntervalSeconds"] == 1
    # The chart refuses run limits set both here and in the run coordinator.
    assert "maxConcurrentRuns" not in queued and "tagConcurrencyLimits" not in queued
