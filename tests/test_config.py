"""Configuration: a bad file is refused with every error's path; `ha validate` exits 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ha.cli import main
from ha.config import load_config
from ha.errors import ConfigError

GOOD = """
providers:
  lab: {type: script, status: "echo on", power_on: "true", power_off: "true"}
scenarios:
  - name: web01
    production: {address: 127.0.0.2, machine: {provider: lab, name: web01}}
    replica: {address: 127.0.0.3}
    checks:
      - {kind: tcp, port: 443, interval: 500ms, timeout: 200ms}
      - {kind: http, port: 8080}
    failover: {mode: manual, failures: 2, hold_down: 5m}
    fence: true
    redirect:
      - script: {set: "echo {address}", get: "cat active"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ha.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.errors


def test_a_good_file_gives_typed_models(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    scenario = config.scenarios[0]
    assert scenario.checks[0].interval == 0.5
    assert scenario.checks[0].timeout == 0.2
    assert scenario.failover.hold_down == 300
    assert scenario.failover.mode == "manual"
    assert config.state == tmp_path / "ha-state.db"
    assert config.api.token_file == tmp_path / "ha-token"
    assert config.api.listen == "127.0.0.1"


def test_port_out_of_range_names_its_path(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, GOOD.replace("port: 443", "port: 70000"))
    assert errors == [
        ("scenarios[0].checks[0].port", "input should be less than or equal to 65535 (got 70000)")
    ]


def test_unknown_check_kind_names_its_path_and_the_known_kinds(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, GOOD.replace("kind: http", "kind: htp"))
    assert len(errors) == 1
    path, message = errors[0]
    assert path == "scenarios[0].checks[1]"
    assert message.startswith("unknown kind 'htp'; known: ")
    assert "'http'" in message


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("port: 443", "port: 0").replace("interval: 500ms", "interval: soon")
    text = text.replace("failures: 2", "failures: 0")
    paths = [path for path, _ in errors_of(tmp_path, text)]
    assert paths == [
        "scenarios[0].checks[0].port",
        "scenarios[0].checks[0].interval",
        "scenarios[0].failover.failures",
    ]


def test_duplicate_scenario_names(tmp_path: Path) -> None:
    text = GOOD + textwrap.indent(
        textwrap.dedent(
            """\
            - name: web01
              production: {address: 127.0.0.4}
              replica: {address: 127.0.0.5}
              checks: [{kind: tcp, port: 22}]
            """
        ),
        "  ",
    )
    assert errors_of(tmp_path, text) == [
        ("scenarios[1].name", "duplicate scenario name 'web01' (first at scenarios[0])")
    ]


def test_references_between_sections(tmp_path: Path) -> None:
    text = GOOD.replace("provider: lab", "provider: dc9")
    text = text.replace(
        "replica: {address: 127.0.0.3}", "replica: {address: 127.0.0.3, standby: true}"
    )
    assert errors_of(tmp_path, text) == [
        ("scenarios[0].production.machine.provider", "unknown provider 'dc9' (defined: lab)"),
        ("scenarios[0].replica.standby", "a standby replica needs replica.machine to power on"),
    ]


def test_unknown_fields_and_inline_secrets_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("fence: true", "fence: true\n    password: hunter2")
    errors = errors_of(tmp_path, text)
    assert errors == [("scenarios[0].password", "unknown field")]
    assert "hunter2" not in str(errors)


def test_missing_secret_file_names_the_field(tmp_path: Path) -> None:
    text = GOOD.replace(
        "- {kind: http, port: 8080}",
        "- {kind: database, driver: postgresql, user: ha, database: app, password_file: nope.txt}",
    )
    errors = errors_of(tmp_path, text)
    assert [path for path, _ in errors] == ["scenarios[0].checks[1].password_file"]
    assert "nope.txt" in errors[0][1]


def test_malformed_yaml_gives_line_and_column(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "scenarios:\n  - name: [web01\n")
    assert len(errors) == 1
    assert ":3:1: invalid YAML" in errors[0][1]


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "state: a.db\nstate: b.db\n")
    assert "key 'state' is given twice" in errors[0][1]


def test_ha_validate_prints_each_error_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace("port: 443", "port: 70000"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: invalid configuration" in err
    assert "scenarios[0].checks[0].port: input should be less than or equal to 65535" in err


def test_ha_validate_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    assert main(["validate", str(path)]) == 0
    assert f"{path}: valid (1 scenario, 0 groups, 1 provider)" in capsys.readouterr().out


def test_ha_validate_finds_the_file_as_every_command_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-c, else $HA_CONFIG: an operator who typed `ha status -c FILE` types the same here."""
    good = write(tmp_path, GOOD)
    assert main(["validate", "-c", str(good)]) == 0
    assert f"{good}: valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("port: 443", "port: 70000"))
    monkeypatch.setenv("HA_CONFIG", str(bad))
    assert main(["validate"]) == 2
    assert f"{bad}: invalid configuration" in capsys.readouterr().err


def test_the_daemon_refuses_an_invalid_file_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace("kind: http", "kind: nope"))
    assert main(["daemon", "-c", str(path)]) == 2
    assert "scenarios[0].checks[1]: unknown kind 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "ha-state.db").exists()
    assert not (tmp_path / "ha-token").exists()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("scenarios: [name: x\n", ":2:1: invalid YAML"),
        (GOOD.replace("kind: http", "kind: htp"), "scenarios[0].checks[1]: unknown kind 'htp'"),
        (GOOD.replace("port: 443", "port: 70000"), "scenarios[0].checks[0].port:"),
        (
            GOOD.replace(
                "kind: http, port: 8080",
                "kind: database, driver: mysql, user: u, password_file: gone",
            ),
            "scenarios[0].checks[1].password_file: cannot read",
        ),
        (
            GOOD + GOOD.split("scenarios:\n", 1)[1],
            "scenarios[1].name: duplicate scenario name 'web01'",
        ),
    ],
)
def test_each_bad_input_exits_2_naming_the_place_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    path = write(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    assert where in capsys.readouterr().err
    assert main(["daemon", "-c", str(path)]) == 2
    assert where in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ha.yaml"]


FARM = """
scenarios:
  - {name: db, production: {address: 127.0.0.2}, replica: {address: 127.0.0.3},
     checks: [{kind: tcp, port: 5432}]}
  - {name: app, production: {address: 127.0.0.4}, replica: {address: 127.0.0.5},
     checks: [{kind: tcp, port: 80, interval: 5s}], failover: {failures: 9}}
  - {name: web, production: {address: 127.0.0.6}, replica: {address: 127.0.0.7},
     checks: [{kind: tcp, port: 443}], failback: {stable_for: 1m}}
groups:
  - name: farm
    scenarios: [db, app, web]
    after: {app: [db], web: [app]}
    defaults: {interval: 2s, failover: {mode: manual, failures: 4}, failback: {mode: automatic}}
"""


def test_group_members_inherit_defaults_unless_they_override(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FARM))
    db, app, _ = config.scenarios
    assert (db.checks[0].interval, db.failover.mode, db.failover.failures) == (2.0, "manual", 4)
    assert (app.checks[0].interval, app.failover.mode, app.failover.failures) == (5.0, "manual", 9)
    assert [(s.failback.mode, s.failback.stable_for) for s in config.scenarios] == [
        ("automatic", 300.0),
        ("automatic", 300.0),
        ("automatic", 60.0),
    ]
    assert config.groups[0].waves() == [["db"], ["app"], ["web"]]


def test_an_empty_assured_recovery_default_turns_it_on_for_members_without_their_own(
    tmp_path: Path,
) -> None:
    """``assured_recovery: {}`` (every setting at its default: ``ha test`` only) turns it on, in
    a group's defaults as in a scenario; a member's own section wins."""
    commands = ("status", "power_on", "power_off", "snapshot", "revert", "delete_snapshot")
    lab = ", ".join(f"{command}: 'true'" for command in commands)
    text = f"providers: {{lab: {{type: script, {lab}}}}}\n" + FARM
    for replica in ("127.0.0.3", "127.0.0.5", "127.0.0.7"):
        text = text.replace(
            f"replica: {{address: {replica}}}",
            f"replica: {{address: {replica}, machine: {{provider: lab, name: r{replica[-1]}}}}}",
        )
    text = text.replace("failback: {mode: automatic}}", "assured_recovery: {}}")
    text = text.replace("failback: {stable_for: 1m}}", "assured_recovery: {timeout: 1m}}")
    config = load_config(write(tmp_path, text))
    tests = [s.assured_recovery for s in config.scenarios]
    assert [t.timeout if t is not None else None for t in tests] == [600.0, 600.0, 60.0]


def test_a_bad_group_default_names_its_field(tmp_path: Path) -> None:
    text = FARM.replace("failback: {mode: automatic}", "failback: {mode: sometimes}")
    assert errors_of(tmp_path, text) == [
        (
            "groups[0].defaults.failback.mode",
            "input should be 'manual' or 'automatic' (got 'sometimes')",
        )
    ]


def test_a_dependency_cycle_is_an_error_naming_the_cycle(tmp_path: Path) -> None:
    text = FARM.replace("after: {app: [db], web: [app]}", "after: {app: [web], web: [app]}")
    assert errors_of(tmp_path, text) == [("groups[0].after", "dependency cycle: app -> web -> app")]


def test_group_members_must_exist_once(tmp_path: Path) -> None:
    text = FARM + "  - {name: other, scenarios: [web, nope]}\n"
    assert errors_of(tmp_path, text) == [
        ("groups[1].scenarios[0]", "'web' is in group 'farm' too"),
        ("groups[1].scenarios[1]", "no scenario named 'nope'"),
    ]


def test_an_etcd_state_and_the_cluster_section(tmp_path: Path) -> None:
    text = "state: etcd://127.0.0.1:2379,127.0.0.2:2379/site\ncluster: {name: ha-a, quorum: 2}\n"
    config = load_config(write(tmp_path, text))
    assert str(config.state) == "etcd://127.0.0.1:2379,127.0.0.2:2379/site/"
    assert config.cluster is not None
    assert (config.cluster.name, config.cluster.quorum) == ("ha-a", 2)
    assert (config.cluster.lease_ttl, config.cluster.view_max_age) == (5, 5)


def test_cluster_errors_name_their_fields(tmp_path: Path) -> None:
    text = "state: etcd://127.0.0.1\ncluster: {lease_ttl: 1500ms, quorum: 0}\n"
    assert errors_of(tmp_path, text) == [
        ("state", "'127.0.0.1' in 'etcd://127.0.0.1' is not host:port (port 1..65535)"),
        (
            "cluster.lease_ttl",
            "must be whole seconds, at least 2s (etcd leases count in seconds)",
        ),
        ("cluster.quorum", "input should be greater than or equal to 1 (got 0)"),
    ]
    assert errors_of(tmp_path, "cluster: {name: a}\n") == [
        ("cluster", "needs state: etcd://host:port,... (a shared store)")
    ]


def test_two_checks_of_a_scenario_with_one_name(tmp_path: Path) -> None:
    text = GOOD.replace("interval: 500ms,", "name: up, interval: 500ms,").replace(
        "{kind: http, port: 8080}", "{kind: http, port: 8080, name: up}"
    )
    assert errors_of(tmp_path, text) == [
        ("scenarios[0].checks[1].name", "duplicate check name 'up' (first at checks[0])")
    ]
