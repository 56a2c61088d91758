"""The instance index, instance selection, create-instance and delete-instance, on real files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tentacle_manager.instances import config_file, registry
from tentacle_manager.instances.config_file import EMPTY_DOCUMENT, SettingsFile
from tentacle_manager.instances.errors import (
    AmbiguousInstanceError,
    ConfigFileError,
    InstanceNotFoundError,
    SettingError,
)
from tentacle_manager.instances.home import HomeLayout
from tentacle_manager.instances.registry import (
    HOME_OVERRIDE_VARIABLE,
    InstanceRegistry,
    create_instance,
    delete_instance,
    index_file_name,
    machine_config_home,
    select_instance,
    validate_instance_name,
)
from tentacle_manager.instances.tentacle_config import TentacleConfigFile


@pytest.fixture
def machine_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "machine"
    monkeypatch.setenv(HOME_OVERRIDE_VARIABLE, str(home))
    return home


@pytest.fixture
def index(machine_home: Path) -> InstanceRegistry:
    return InstanceRegistry()


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


def index_folder(machine_home: Path) -> Path:
    return machine_home / "Tentacle" / "Instances"


def write_index_entry(machine_home: Path, file_name: str, name: str, config: Path) -> None:
    folder = index_folder(machine_home)
    folder.mkdir(parents=True, exist_ok=True)
    document = {"Name": name, "ConfigurationFilePath": str(config)}
    (folder / file_name).write_text(json.dumps(document, indent=2))


def add_instance(index: InstanceRegistry, tmp_path: Path, name: str) -> Path:
    config = tmp_path / "configs" / f"{name}.cfg"
    create_instance(index, instance=name, config=config, cwd=tmp_path)
    return config


# Where the index lives


def test_the_override_variable_wins(tmp_path: Path) -> None:
    environ = {HOME_OVERRIDE_VARIABLE: str(tmp_path), "XDG_CONFIG_HOME": "/elsewhere"}
    assert machine_config_home(environ) == tmp_path


def test_root_uses_etc_octopus_and_users_their_config_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(registry.os, "geteuid", lambda: 0)
    assert machine_config_home({}) == Path("/etc/octopus")
    monkeypatch.setattr(registry.os, "geteuid", lambda: 1000)
    assert machine_config_home({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "octopus"
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert machine_config_home({}) == tmp_path / "user" / ".config" / "octopus"


# create-instance


def test_create_instance_indexes_the_config_and_sets_its_home(
    index: InstanceRegistry, machine_home: Path, tmp_path: Path, cwd: Path
) -> None:
    config = tmp_path / "d" / "x.cfg"
    created = create_instance(index, instance="X", config=config, cwd=cwd)
    entry = index_folder(machine_home) / "x.config"
    assert json.loads(entry.read_text()) == {"Name": "X", "ConfigurationFilePath": str(config)}
    assert entry.read_text() == json.dumps(
        {"Name": "X", "ConfigurationFilePath": str(config)}, indent=2
    )
    assert TentacleConfigFile(config).load().home == tmp_path / "d"
    assert created.messages == [
        f"Creating empty configuration file: {config}",
        f"Setting home directory to: {tmp_path / 'd'}",
        "Saving instance: X",
    ]
    layout = HomeLayout(tmp_path / "d")
    assert all(folder.is_dir() for folder in (layout.work, layout.logs, layout.tools, layout.files))
    assert stat.S_IMODE(layout.work.stat().st_mode) == 0o750


def test_index_file_names_are_lower_case_with_dashes_for_spaces() -> None:
    assert index_file_name("My Tentacle") == "my-tentacle.config"


def test_rerunning_keeps_the_file_and_the_stored_name_and_updates_the_path(
    index: InstanceRegistry, machine_home: Path, tmp_path: Path, cwd: Path
) -> None:
    first = tmp_path / "one" / "a.cfg"
    create_instance(index, instance="My Tentacle", config=first, cwd=cwd)
    with SettingsFile(first).edit() as values:
        values.set("Custom", "kept")
    again = create_instance(index, instance="my tentacle", config=first, cwd=cwd)
    assert again.created_configuration_file is False
    assert again.messages[0] == f"Configuration file at {first} already exists."
    assert SettingsFile(first).read().get("Custom") == "kept"

    second = tmp_path / "two" / "b.cfg"
    moved = create_instance(index, instance="MY TENTACLE", config=second, cwd=cwd)
    assert moved.name == "My Tentacle"
    [record] = index.list_instances()
    assert (record.name, record.configuration_file_path) == ("My Tentacle", second)
    assert record.index_file == index_folder(machine_home) / "my-tentacle.config"


def test_a_name_sharing_another_instances_index_file_is_refused(
    index: InstanceRegistry, tmp_path: Path, cwd: Path
) -> None:
    add_instance(index, tmp_path, "My Tentacle")
    before = index.list_instances()
    other = tmp_path / "other.cfg"
    with pytest.raises(SettingError, match="shares the index file") as caught:
        create_instance(index, instance="my-tentacle", config=other, cwd=cwd)
    assert caught.value.field == "instance"
    assert index.list_instances() == before
    assert not other.exists()


@pytest.mark.parametrize(
    "name", [" lead", "trail ", "-option", ".hidden", "a/b", "semi;colon", "é", "x" * 101]
)
def test_instance_names_are_validated_before_anything_is_written(
    index: InstanceRegistry, machine_home: Path, tmp_path: Path, cwd: Path, name: str
) -> None:
    with pytest.raises(SettingError) as caught:
        create_instance(index, instance=name, config=tmp_path / "c.cfg", cwd=cwd)
    assert caught.value.field == "instance"
    assert "1 to 100 characters" in caught.value.message
    assert not (tmp_path / "c.cfg").exists()
    assert not machine_home.exists()


def test_an_empty_name_is_not_a_valid_name() -> None:
    with pytest.raises(SettingError, match="1 to 100 characters"):
        validate_instance_name("")


def test_valid_names_include_spaces_dots_dashes_and_underscores() -> None:
    for name in ("Tentacle", "web 01", "a.b-c_d", "x" * 100, "7"):
        assert validate_instance_name(name) == name


def test_create_without_instance_or_config_uses_the_working_directory_and_indexes_nothing(
    index: InstanceRegistry, machine_home: Path, cwd: Path
) -> None:
    created = create_instance(index, cwd=cwd)
    assert created.name is None
    assert created.configuration_file_path == cwd / "Tentacle.config"
    assert TentacleConfigFile(cwd / "Tentacle.config").load().home == cwd
    assert index.list_instances() == []
    assert "Saving instance" not in " ".join(created.messages)


def test_create_with_only_a_relative_config_registers_tentacle(
    index: InstanceRegistry, cwd: Path
) -> None:
    created = create_instance(index, config="sub/t.cfg", cwd=cwd)
    assert (created.name, created.configuration_file_path) == ("Tentacle", cwd / "sub" / "t.cfg")
    assert created.home == cwd / "sub"


def test_a_relative_config_is_taken_from_home_and_home_is_stored_absolute(
    index: InstanceRegistry, cwd: Path
) -> None:
    created = create_instance(index, instance="A", config="a.cfg", home="h", cwd=cwd)
    assert created.configuration_file_path == cwd / "h" / "a.cfg"
    stored = SettingsFile(created.configuration_file_path).read().get("Octopus.Home")
    assert stored == str(cwd / "h")


def test_a_failed_registration_removes_the_config_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwd: Path
) -> None:
    blocker = tmp_path / "machine-is-a-file"
    blocker.write_text("")
    monkeypatch.setenv(HOME_OVERRIDE_VARIABLE, str(blocker))
    config = tmp_path / "d" / "x.cfg"
    with pytest.raises(ConfigFileError) as caught:
        create_instance(InstanceRegistry(), instance="X", config=config, cwd=cwd)
    assert "Unable to write file" in caught.value.message
    assert not config.exists()


def test_a_failed_registration_keeps_a_config_that_was_already_there(
    index: InstanceRegistry, tmp_path: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "existing.cfg"
    SettingsFile(config).create_empty()

    def crash(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    with SettingsFile(config).edit() as values:
        values.set("Octopus.Home", "/before")
    before = config.read_bytes()
    monkeypatch.setattr(config_file.os, "replace", crash)
    with pytest.raises(ConfigFileError, match="No space left on device"):
        create_instance(index, instance="X", config=config, home=tmp_path / "new", cwd=cwd)
    assert config.read_bytes() == before
    assert index.list_instances() == []


def test_a_fresh_config_starts_as_tentacles_empty_document(tmp_path: Path) -> None:
    path = tmp_path / "fresh.cfg"
    SettingsFile(path).create_empty()
    assert path.read_bytes() == EMPTY_DOCUMENT


# Lookup


def test_lookup_ignores_case_and_lists_sorted(index: InstanceRegistry, tmp_path: Path) -> None:
    add_instance(index, tmp_path, "beta")
    add_instance(index, tmp_path, "Alpha")
    assert index.find("ALPHA").name == "Alpha"
    assert [record.name for record in index.list_instances()] == ["Alpha", "beta"]


def test_an_unknown_instance_lists_the_available_ones(
    index: InstanceRegistry, tmp_path: Path
) -> None:
    add_instance(index, tmp_path, "b")
    add_instance(index, tmp_path, "a")
    with pytest.raises(InstanceNotFoundError) as caught:
        index.find("missing")
    assert caught.value.message == (
        "Instance missing of Tentacle has not been configured on this machine. "
        "Available instances: a, b."
    )


def test_exact_case_breaks_a_tie(
    index: InstanceRegistry, machine_home: Path, tmp_path: Path
) -> None:
    write_index_entry(machine_home, "one.config", "Web", tmp_path / "1.cfg")
    write_index_entry(machine_home, "two.config", "WEB", tmp_path / "2.cfg")
    assert index.find("WEB").configuration_file_path == tmp_path / "2.cfg"
    with pytest.raises(AmbiguousInstanceError, match="could not be matched"):
        index.find("web")


def test_the_default_is_tentacle_else_the_only_one(index: InstanceRegistry, tmp_path: Path) -> None:
    with pytest.raises(InstanceNotFoundError) as none:
        index.default_instance()
    assert (
        none.value.message == "Unable to find default instance of Tentacle. Available instances: ."
    )
    add_instance(index, tmp_path, "B")
    assert index.default_instance().name == "B"
    add_instance(index, tmp_path, "C")
    with pytest.raises(AmbiguousInstanceError) as several:
        index.default_instance()
    assert several.value.message == (
        "There is more than one instance of Tentacle configured on this machine. Please pass "
        "--instance=INSTANCENAME when invoking this command to target a specific instance. "
        "Available instances: B, C."
    )
    add_instance(index, tmp_path, "Tentacle")
    assert index.default_instance().name == "Tentacle"


def test_a_corrupt_index_file_names_file_and_line(
    index: InstanceRegistry, machine_home: Path
) -> None:
    folder = index_folder(machine_home)
    folder.mkdir(parents=True)
    (folder / "broken.config").write_text('{\n  "Name": "x",\n  "ConfigurationFilePath": \n}')
    with pytest.raises(ConfigFileError) as caught:
        index.list_instances()
    assert (caught.value.path, caught.value.line) == (folder / "broken.config", 4)
    (folder / "broken.config").write_text('{"Name": "x"}')
    with pytest.raises(ConfigFileError) as missing:
        index.list_instances()
    assert missing.value.key == "ConfigurationFilePath"


def test_index_property_names_ignore_case_as_newtonsoft(
    index: InstanceRegistry, machine_home: Path, tmp_path: Path
) -> None:
    folder = index_folder(machine_home)
    folder.mkdir(parents=True)
    (folder / "x.config").write_text('{"name": "X", "configurationFilePath": "/d/x.cfg"}')
    assert index.find("x").configuration_file_path == Path("/d/x.cfg")


# Selection


def test_instance_wins_then_config_then_working_directory_then_default(
    index: InstanceRegistry, tmp_path: Path, cwd: Path
) -> None:
    named = add_instance(index, tmp_path, "Only")
    assert select_instance(index, instance="only", cwd=cwd).configuration_file_path == named

    SettingsFile(cwd / "other.cfg").create_empty()
    by_config = select_instance(index, config="other.cfg", cwd=cwd)
    assert (by_config.name, by_config.configuration_file_path) == (None, cwd / "other.cfg")

    assert select_instance(index, cwd=cwd).name == "Only"
    SettingsFile(cwd / "Tentacle.config").create_empty()
    local = select_instance(index, cwd=cwd)
    assert (local.name, local.configuration_file_path) == (None, cwd / "Tentacle.config")


def test_a_missing_config_file_is_reported_with_tentacles_message(
    index: InstanceRegistry, tmp_path: Path, cwd: Path
) -> None:
    config = add_instance(index, tmp_path, "Gone")
    config.unlink()
    with pytest.raises(InstanceNotFoundError) as named:
        select_instance(index, instance="Gone", cwd=cwd)
    assert named.value.message.startswith(
        f"The configuration file for instance Gone could not be located at the specified "
        f"location {config}. The file might have been manually removed"
    )
    assert named.value.remedy is not None and "delete-instance" in named.value.remedy
    with pytest.raises(InstanceNotFoundError) as unnamed:
        select_instance(index, config=tmp_path / "nope.cfg", cwd=cwd)
    assert unnamed.value.message == (
        f"The configuration file at {tmp_path / 'nope.cfg'} could not be located at the "
        "specified location."
    )


# delete-instance


def test_delete_removes_only_the_index_entry(
    index: InstanceRegistry, tmp_path: Path, cwd: Path
) -> None:
    config = add_instance(index, tmp_path, "X")
    add_instance(index, tmp_path, "Y")
    record = delete_instance(index, "x")
    assert record.name == "X"
    assert not record.index_file.exists()
    assert config.is_file()
    assert HomeLayout(config.parent).work.is_dir()
    assert [r.name for r in index.list_instances()] == ["Y"]
    with pytest.raises(InstanceNotFoundError, match=r"Available instances: Y\."):
        delete_instance(index, "X")


def test_delete_works_when_the_config_file_is_already_gone(
    index: InstanceRegistry, tmp_path: Path
) -> None:
    add_instance(index, tmp_path, "X").unlink()
    delete_instance(index, "X")
    assert index.list_instances() == []
