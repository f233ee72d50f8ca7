"""What the Dagster UI shows, asked through its GraphQL API: a real ``dagster-webserver`` on
a free loopback port over an instance where runs against the replay exchange were recorded.
The partitions end with the configured history, an empty partition is named by a failed
check and the materialization's metadata, long steps log their progress, and runs carry the
symbols they write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers import free_port, until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: The configuration: sentiment.yaml starting two days before the bundled data, whose
#: first days therefore hold nothing.
FIRST = "2021-12-30"
RANGE = {"dagster/asset_partition_range_start": f"{FIRST}|BTCUSDT",
         "dagster/asset_partition_range_end": "2022-01-02|ETHUSDT"}


@pytest.fixture(scope="module")
def ui(replay, tmp_path_factory):
    """``query(text, **variables)`` against the webserver, after the runs were recorded."""
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home)
    config = tmp / "sentiment.yaml"
    text = (ROOT / "sentiment.yaml").read_text()
    assert 'start_date: "2022-01-01"' in text and 'end_date: "2022-12-31"' in text
    config.write_text(text.replace('start_date: "2022-01-01"', f'start_date: "{FIRST}"'))
    env = {**os.environ, "DAGSTER_HOME": str(home), "SENTIMENT_CONFIG": str(config),
           "SENTIMENT_DB": str(tmp / "sentiment.duckdb"), "BYBIT_BASE_URL": replay.base_url,
           "FEAR_GREED_URL": replay.fear_greed_url}
    record = subprocess.run([sys.executable, "-c", RECORD], env=env, cwd=ROOT, timeout=600,
                            capture_output=True, text=True)
    assert record.returncode == 0, record.stderr[-3000:]
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p",
         str(port), "-w", "workspace.yaml"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/graphql"

    def query(text: str, **variables) -> dict:
        answer = requests.post(url, json={"query": text, "variables": variables}, timeout=60)
        body = answer.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def loaded() -> bool:
        try:
            data = query("{ workspaceOrError { ... on Workspace { locationEntries "
                         "{ loadStatus } } } }")
        except requests.ConnectionError:
            return False
        return [e["loadStatus"] for e in data["workspaceOrError"]["locationEntries"]] == [
            "LOADED"]

    try:
        until(loaded, timeout=120)
        yield query
    finally:
        server.terminate()
        server.wait(timeout=30)


#: Runs recorded in the instance the webserver shows (DAGSTER_HOME), in a process of its
#: own as `make demo --persist` does: the market data of the first four days (two without
#: data), one partition alone, then their sentiment.
RECORD = f"""
from dagster import DagsterInstance
from orchestration.definitions import defs
instance = DagsterInstance.get()
for job, tags in (("market_data_job", {RANGE!r}),
                  ("market_data_job", {{"dagster/partition": "2022-01-01|BTCUSDT",
                                        "dagster/partition/date": "2022-01-01",
                                        "dagster/partition/symbol": "BTCUSDT"}}),
                  ("sentiment_job", {RANGE!r})):
    assert defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags, raise_on_error=False).success, job
"""


def test_partitions_end_with_the_configured_history(ui):
    data = ui('{ assetNodes(assetKeys: [{path: ["candles"]}]) { partitionKeysByDimension '
              '{ name partitionKeys } } }')
    dims = {d["name"]: d["partitionKeys"]
            for d in data["assetNodes"][0]["partitionKeysByDimension"]}
    assert dims["symbol"] == ["BTCUSDT", "ETHUSDT"]
    assert dims["date"][0] == FIRST and dims["date"][-1] == "2022-12-31"  # end_date
    assert len(dims["date"]) == 367  # not every day up to today


CHECK = """query ($asset: String!, $check: String!) {
  assetCheckExecutions(assetKey: {path: [$asset]}, checkName: $check, limit: 5) {
    status evaluation { severity description } } }"""


def test_an_empty_partition_is_named_not_a_silent_success(ui):
    runs = ui("{ runsOrError { ... on Runs { results { runId jobName status "
              "tags { key value } } } } }")["runsOrError"]["results"]
    assert [r["status"] for r in runs] == ["SUCCESS"] * 3
    # Newest first: the check of the single good partition passed, the range's failed.
    for asset in ("candles", "sentiment_history"):
        executions = ui(CHECK, asset=asset,
                        check=f"{asset}_partitions_have_rows")["assetCheckExecutions"]
        ranged = executions[0] if asset == "sentiment_history" else executions[1]
        assert ranged["status"] == "FAILED"
        assert ranged["evaluation"]["severity"] == "WARN"
        description = ranged["evaluation"]["description"]
        assert description.startswith("4 of 8 partition(s) hold no rows (run ")
        assert "2021-12-30|BTCUSDT" in description and "2021-12-31|ETHUSDT" in description
        assert "2022-01-01" not in description
    single = ui(CHECK, asset="candles", check="candles_partitions_have_rows")[
        "assetCheckExecutions"][0]
    assert single["status"] == "SUCCEEDED"
    # The empty partition's materialization says so in its metadata, with the reason.
    data = ui("""{ assetOrError(assetKey: {path: ["candles"]}) { ... on Asset {
        assetMaterializations(partitions: ["2021-12-30|BTCUSDT"]) { partition
          metadataEntries { label ... on IntMetadataEntry { intValue }
                                  ... on TextMetadataEntry { text } } } } } }""")
    [event] = data["assetOrError"]["assetMaterializations"]
    meta = {e["label"]: e.get("intValue", e.get("text")) for e in event["metadataEntries"]}
    assert meta["empty_partitions"] == 4
    assert "answered no candles rows for those days" in meta["empty"]


def test_runs_carry_the_symbols_they_write_and_long_steps_their_progress(ui):
    runs = ui("{ runsOrError { ... on Runs { results { runId jobName "
              "tags { key value } } } } }")["runsOrError"]["results"]
    tags = [{t["key"]: t["value"] for t in r["tags"]} for r in runs]
    sentiment, single, market = tags
    assert sentiment["sentiment/symbols"] == market["sentiment/symbols"] == "BTCUSDT,ETHUSDT"
    assert single["sentiment/symbol"] == single["dagster/partition/symbol"] == "BTCUSDT"
    logs = ui("""query ($run: ID!) { logsForRun(runId: $run) { ... on EventConnection {
        events { __typename ... on MessageEvent { message stepKey } } } } }""",
              run=runs[0]["runId"])["logsForRun"]["events"]
    progress = [e["message"] for e in logs if e.get("stepKey") == "sentiment_history"]
    for line in ("BTCUSDT 60: 48 row(s) for 2021-12-30..2022-01-03",
                 "ETHUSDT 240: 12 row(s) for 2021-12-30..2022-01-03"):
        assert any(m.startswith(line) for m in progress), progress


def test_bootstrap_job_and_the_batched_stream_loads_are_what_the_ui_lists(ui):
    data = ui("""{ repositoriesOrError { ... on RepositoryConnection { nodes {
        jobs { name description }
        sensors { name minIntervalSeconds targets { pipelineName } } } } } }""")
    [repo] = data["repositoriesOrError"]["nodes"]
    jobs = {j["name"]: j["description"] for j in repo["jobs"]}
    assert "monthly chunks" in jobs["bootstrap_job"]
    sensors = {s["name"]: s for s in repo["sensors"]}
    live = sensors["live_update_sensor"]
    assert {t["pipelineName"] for t in live["targets"]} == {"live_update_job",
                                                            "bootstrap_job"}
    # At most one stream load every half minute, not one every few seconds.
    assert sensors["stream_load_sensor"]["minIntervalSeconds"] >= 30
