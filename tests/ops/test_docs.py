"""The operations documents stay true: every test the threat model cites exists, and every
metric docs/observability.md lists is one the gateway exports."""

from __future__ import annotations

import re
from pathlib import Path

from bastion.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
CITED = re.compile(r"`((?:tests|fuzz)/[\w/]+\.py)(?:::(\w+))?`")


def test_every_test_the_threat_model_cites_exists() -> None:
    text = (ROOT / "docs" / "threat-model.md").read_text()
    cited = CITED.findall(text)
    assert len(cited) > 60
    for path, name in cited:
        source = ROOT / path
        assert source.is_file(), path
        if name:
            assert re.search(
                rf"^(?:async def|def|class) {name}\b|^{name} = ", source.read_text(), re.M
            ), f"{path}::{name}"


def test_every_documented_metric_is_exported() -> None:
    text = (ROOT / "docs" / "observability.md").read_text()
    documented = set(re.findall(r"`(bastion_[a-z_]+)`", text))
    metrics = Metrics()
    metrics.watch_reservations(lambda: 0)
    exported = {family.name for family in metrics.registry.collect()}
    # counters are exposed with a _total suffix; collectors of circuits and settlements add
    # theirs at scrape time
    names = (
        set(exported)
        | {n + "_total" for n in exported}
        | {
            "bastion_upstream_circuit_state",
            "bastion_upstream_up",
            "bastion_upstream_consecutive_failures",
            "bastion_upstream_failures_total",
            "bastion_upstream_successes_total",
            "bastion_settlement_batches_total",
            "bastion_settlement_charges_written_total",
            "bastion_settlement_charges_voided_total",
            "bastion_request_log_dropped_total",
            "bastion_store_of_record_failing",
        }
    )
    assert documented - names == set()
    assert {n for n in exported if n.startswith("bastion_")} - {
        n.removesuffix("_total") for n in documented
    } == set()
