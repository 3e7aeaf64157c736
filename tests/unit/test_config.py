import dataclasses

import pytest
import yaml

from snowmelt.config import REFERENCE_CONFIG, Config, ConfigError, as_dict, load_config


def _keys(tree, prefix=()):
    out = set()
    for key, value in tree.items():
        out.add(prefix + (key,))
        if isinstance(value, dict) and value and not prefix + (key,) in _FREE_MAPPINGS:
            out |= _keys(value, prefix + (key,))
    return out


# Mappings whose keys are the user's (not config keys).
_FREE_MAPPINGS = {("kafka", "common"), ("kafka", "producer"), ("collector", "paths"),
                  ("collector", "root_response", "headers")}


def test_reference_config_documents_every_key_with_its_default():
    documented = yaml.safe_load(REFERENCE_CONFIG.read_text())
    assert _keys(documented) == _keys(as_dict(Config()))
    assert as_dict(load_config(REFERENCE_CONFIG, env={})) == as_dict(Config())


def test_file_values_and_env_overrides(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("kafka:\n  bootstrap_servers: a:1\ncollector:\n  port: 9000\n  cookie:\n    name: x\n")
    config = load_config(path, env={
        "SNOWMELT_COLLECTOR__PORT": "9100",
        "snowmelt_collector__cookie__domains": "[acme.com, acme.net]",
        "SNOWMELT_TOPICS__RAW": "raw-x",
        "SNOWMELT_KAFKA__PRODUCER__LINGER.MS": "20",
        "OTHER": "ignored",
    })
    assert config.kafka.bootstrap_servers == "a:1"
    assert config.collector.port == 9100
    assert config.collector.cookie.name == "x"
    assert config.collector.cookie.domains == ("acme.com", "acme.net")
    assert config.topics.raw == "raw-x"
    assert config.kafka.producer["linger.ms"] == 20


def test_config_is_frozen():
    config = load_config(None, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.collector.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.collector.paths["/x"] = "/y"  # type: ignore[index]


@pytest.mark.parametrize("env, message", [
    ({"SNOWMELT_COLLECTOR__PORTT": "1"}, "unknown key collector.portt"),
    ({"SNOWMELT_COLLECTOR__PORT": "abc"}, "collector.port must be an integer"),
    ({"SNOWMELT_COLLECTOR__COOKIE__SECURE": "maybe"}, "collector.cookie.secure must be true or false"),
    ({"SNOWMELT_COLLECTOR__DELIVERY": "sometimes"}, "collector.delivery must be one of acked, buffered"),
    ({"SNOWMELT_NOPE__X": "1"}, "unknown key nope"),
])
def test_invalid_values_name_the_key(env, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(None, env=env)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yml", env={})
    bad = tmp_path / "bad.yml"
    bad.write_text("kafka: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})
    listy = tmp_path / "list.yml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(listy, env={})


def test_cli_prints_effective_config(capsys, monkeypatch):
    from snowmelt.cli import main

    monkeypatch.setenv("SNOWMELT_COLLECTOR__PORT", "9999")
    assert main(["config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["collector"]["port"] == 9999


def test_cli_refuses_invalid_config(capsys, monkeypatch):
    from snowmelt.cli import main

    monkeypatch.setenv("SNOWMELT_COLLECTOR__PORT", "x")
    assert main(["config"]) == 2
    assert "collector.port" in capsys.readouterr().err


def test_a_retired_key_loads_with_a_warning_and_an_unknown_one_does_not(tmp_path, caplog):
    path = tmp_path / "c.yml"
    path.write_text("enrich:\n  batch_size: 200\n  batch_timeout: 0.5\n")
    with caplog.at_level("WARNING", logger="snowmelt.config"):
        config = load_config(str(path), env={})
    assert config.enrich.batch_size == 200
    assert "enrich.batch_timeout is no longer used" in caplog.text
    path.write_text("enrich:\n  batch_timeouts: 0.5\n")
    with pytest.raises(ConfigError, match="unknown key enrich.batch_timeouts"):
        load_config(str(path), env={})
