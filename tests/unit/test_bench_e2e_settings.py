"""bench.e2e_bench's ``--setting [ROLE:]KEY=VALUE``: what reaches each process's settings."""
import argparse

import pytest

from bench.e2e_bench import Pipeline, _group_settings, _setting


def test_settings_for_every_role_and_for_one_override_the_benchs_own_in_that_order(tmp_path):
    given = _group_settings([_setting("load.batch_timeout=1"), _setting("load-s3:load.batch_timeout=2"),
                             _setting("kafka.consumer={fetch.wait.max.ms: 100}")])
    pipeline = Pipeline(extra=given, workdir=str(tmp_path))
    own = {"load.batch_timeout": "0.25", "load.s3_group_id": "g"}
    assert pipeline._settings("load-s3", own) == {"load.batch_timeout": "2", "load.s3_group_id": "g",
                                                   "kafka.consumer": "{fetch.wait.max.ms: 100}"}
    assert pipeline._settings("load-clickhouse", own)["load.batch_timeout"] == "1"
    assert Pipeline(workdir=str(tmp_path))._settings("enrich", own) == own


def test_a_value_may_hold_colons_and_equals_signs():
    assert _setting("kafka.common={sasl.password: a=b:c}") == ("all", "kafka.common", "{sasl.password: a=b:c}")
    assert _setting("load-s3:kafka.consumer={fetch.wait.max.ms: 100}") == (
        "load-s3", "kafka.consumer", "{fetch.wait.max.ms: 100}")


@pytest.mark.parametrize("text", ["novalue", "=x", "loader:load.batch_timeout=1"])
def test_a_malformed_setting_or_unknown_role_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _setting(text)
