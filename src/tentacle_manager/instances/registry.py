"""The instance index, choosing the instance a command works on, and creating instances.

The index is Tentacle's (ApplicationInstanceStore.cs): one small JSON file per instance under
`<machine-config-home>/Tentacle/Instances/`, pointing at that instance's config file. Lookups
and messages follow ApplicationInstanceStore.cs and ApplicationInstanceSelector.cs verbatim.

Where we differ: names are validated when an instance is created (they end up in unit files
and service names); two names that would share an index file are refused instead of one
silently re-pointing the other; a relative --home is stored made absolute (Tentacle stores it
as typed and later resolves it against the config file's folder, not the folder it was typed
in); a relative --config without --home is taken from the working directory (Tentacle joins
it to its own folder a second time); the home folder and its layout are created; and a failed
create removes the config file it had just created. Deleting an instance whose config file is
gone works, since that is when the entry most needs removing.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tentacle_manager.instances.config_file import (
    FIX_FILE,
    SettingsFile,
    current_user,
    locked,
    replace_file,
    write_error,
)
from tentacle_manager.instances.errors import (
    AmbiguousInstanceError,
    ConfigFileError,
    InstanceNotFoundError,
    SettingError,
)
from tentacle_manager.instances.tentacle_config import TentacleConfig

APPLICATION_NAME = "Tentacle"
DEFAULT_INSTANCE_NAME = "Tentacle"
DEFAULT_CONFIG_FILE_NAME = "Tentacle.config"
HOME_OVERRIDE_VARIABLE = "TentacleMachineConfigurationHomeDirectory"
INDEX_FILE_MODE = 0o644
INSTANCE_NAME_RULE = (
    "it must be 1 to 100 characters of ASCII letters, digits, spaces, '-', '_' and '.', starting "
    "with a letter or digit and not ending with a space"
)

_INSTANCE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,98}[A-Za-z0-9._-])?")


def machine_config_home(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the index lives: the override variable, else the machine's, else the user's.

    Tentacle always uses /etc/octopus off Windows; a user who is not root cannot write there,
    so for them the index lives in their own config folder instead.
    """
    override = environ.get(HOME_OVERRIDE_VARIABLE, "").strip()
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(environ.get("ProgramData", "C:\\ProgramData"), "Octopus")
    if os.geteuid() == 0:
        return Path("/etc/octopus")
    config_home = environ.get("XDG_CONFIG_HOME", "").strip()
    return Path(config_home or Path.home() / ".config", "octopus")


def validate_instance_name(name: str) -> str:
    if not _INSTANCE_NAME.fullmatch(name):
        raise SettingError(
            "instance", f"Instance name '{name}' is not valid: {INSTANCE_NAME_RULE}."
        )
    return name


def index_file_name(name: str) -> str:
    """Tentacle's mapping: lower case, spaces to '-' (so 'My Tentacle' is my-tentacle.config)."""
    return name.replace(" ", "-").lower() + ".config"


@dataclass(frozen=True)
class InstanceRecord:
    name: str
    configuration_file_path: Path
    index_file: Path


@dataclass(frozen=True)
class SelectedInstance:
    """The config a command works on; `name` is None when it came from --config or the cwd."""

    name: str | None
    configuration_file_path: Path


@dataclass(frozen=True)
class CreatedInstance:
    name: str | None  # None when nothing was registered (neither --instance nor --config)
    configuration_file_path: Path
    home: Path
    created_configuration_file: bool

    @property
    def messages(self) -> list[str]:
        """Tentacle's log lines for create-instance."""
        path = self.configuration_file_path
        lines = [
            f"Creating empty configuration file: {path}"
            if self.created_configuration_file
            else f"Configuration file at {path} already exists.",
            f"Setting home directory to: {self.home}",
        ]
        if self.name is not None:
            lines.append(f"Saving instance: {self.name}")
        return lines


class InstanceRegistry:
    """The index of instances on this machine (or for this user; see machine_config_home)."""

    def __init__(self, home: Path | None = None) -> None:
        self.folder = (home or machine_config_home()) / APPLICATION_NAME / "Instances"

    def list_instances(self) -> list[InstanceRecord]:
        """Every indexed instance, sorted by name ignoring case."""
        if not self.folder.is_dir():
            return []
        records = [
            _read_index_file(path) for path in self.folder.glob("*.config") if path.is_file()
        ]
        return sorted(records, key=lambda record: (record.name.casefold(), record.name))

    def find(self, name: str) -> InstanceRecord:
        """The instance called `name`, ignoring case; an exact-case match breaks a tie."""
        records = self.list_instances()
        matches = [record for record in records if record.name.casefold() == name.casefold()]
        if len(matches) == 1:
            return matches[0]
        exact = [record for record in matches if record.name == name]
        if exact:
            return exact[0]
        if matches:
            raise AmbiguousInstanceError(
                f"Instance {name} of {APPLICATION_NAME} could not be matched to one of the "
                f"existing instances: {_names(records)}.",
                "Pass the name with the exact case it was created with.",
            )
        raise InstanceNotFoundError(
            f"Instance {name} of {APPLICATION_NAME} has not been configured on this machine. "
            f"Available instances: {_names(records)}.",
            "Use one of the available instances, or create it with create-instance.",
        )

    def default_instance(self) -> InstanceRecord:
        """The instance named Tentacle, else the only instance."""
        records = self.list_instances()
        for record in records:
            if record.name == DEFAULT_INSTANCE_NAME:
                return record
        if len(records) == 1:
            return records[0]
        if records:
            raise AmbiguousInstanceError(
                f"There is more than one instance of {APPLICATION_NAME} configured on this "
                "machine. Please pass --instance=INSTANCENAME when invoking this command to "
                f"target a specific instance. Available instances: {_names(records)}."
            )
        raise InstanceNotFoundError(
            f"Unable to find default instance of {APPLICATION_NAME}. Available instances: .",
            "Create one with create-instance.",
        )

    def register(self, name: str, configuration_file_path: Path) -> InstanceRecord:
        """Point the index entry for `name` at the config file; a re-run keeps the stored name."""
        validate_instance_name(name)
        index_file = self.folder / index_file_name(name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(self.folder, error) from error
        with locked(index_file):
            stored_name = name
            if index_file.exists():
                stored_name = _read_index_file(index_file).name
            if stored_name.casefold() != name.casefold():
                raise SettingError(
                    "instance",
                    f"Instance name '{name}' cannot be used: it shares the index file "
                    f"{index_file} with the existing instance '{stored_name}'.",
                    "Choose a name that differs by more than case, spaces and dashes.",
                )
            document = {"Name": stored_name, "ConfigurationFilePath": str(configuration_file_path)}
            data = json.dumps(document, indent=2, ensure_ascii=False).encode()
            replace_file(index_file, data, INDEX_FILE_MODE)
        return InstanceRecord(stored_name, configuration_file_path, index_file)


def _names(records: list[InstanceRecord]) -> str:
    return ", ".join(record.name for record in records)


def _read_index_file(path: Path) -> InstanceRecord:
    """One index entry; property names ignore case, as Newtonsoft's do."""
    try:
        document = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise ConfigFileError(
            path,
            f"the index file is not valid JSON: {error.msg}",
            line=error.lineno,
            remedy=FIX_FILE,
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigFileError(path, f"the index file cannot be read: {error}.") from error
    if not isinstance(document, dict):
        raise ConfigFileError(path, "the index file must hold a JSON object.", remedy=FIX_FILE)
    fields = {str(key).casefold(): value for key, value in document.items()}
    values = []
    for key in ("Name", "ConfigurationFilePath"):
        value = fields.get(key.casefold())
        if not isinstance(value, str) or not value.strip():
            raise ConfigFileError(
                path, f"'{key}' must be a non-empty string.", key=key, remedy=FIX_FILE
            )
        values.append(value)
    return InstanceRecord(values[0], Path(values[1]), path)


def _absolute(path: str | Path, cwd: Path) -> Path:
    return Path(os.path.normpath(cwd / path))


def select_instance(
    registry: InstanceRegistry,
    *,
    instance: str | None = None,
    config: str | Path | None = None,
    cwd: Path | None = None,
) -> SelectedInstance:
    """The config file a command works on: --instance, else --config, else ./Tentacle.config
    in the working directory, else the default instance. The file must exist."""
    here = cwd or Path.cwd()
    if instance:
        record = registry.find(instance)
        selected = SelectedInstance(record.name, record.configuration_file_path)
    elif config:
        selected = SelectedInstance(None, _absolute(config, here))
    elif (here / DEFAULT_CONFIG_FILE_NAME).is_file():
        selected = SelectedInstance(None, here / DEFAULT_CONFIG_FILE_NAME)
    else:
        record = registry.default_instance()
        selected = SelectedInstance(record.name, record.configuration_file_path)
    _require_config_file(selected)
    return selected


def _require_config_file(selected: SelectedInstance) -> None:
    path = selected.configuration_file_path
    if path.is_file():
        return
    if selected.name is None:
        raise InstanceNotFoundError(
            f"The configuration file at {path} could not be located at the specified location."
        )
    raise InstanceNotFoundError(
        f"The configuration file for instance {selected.name} could not be located at the "
        f"specified location {path}. The file might have been manually removed without "
        "properly removing the instance and as such it is still listed as present. "
        "The instance must be created again before you can interact with it.",
        f'Run create-instance --instance "{selected.name}" --config "{path}" to re-create '
        "it, or delete-instance to forget it.",
    )


def create_instance(
    registry: InstanceRegistry,
    *,
    instance: str | None = None,
    config: str | Path | None = None,
    home: str | Path | None = None,
    cwd: Path | None = None,
) -> CreatedInstance:
    """create-instance: make the config file if missing, set its home, and index it.

    Paths follow Tentacle: home defaults to the config file's folder (or the working
    directory), the config file defaults to Tentacle.config, and with --home a relative config
    path is taken from home. Without --home a relative config path is taken from the working
    directory: Tentacle joins it to its own folder, so `--config sub/t.cfg` became
    sub/sub/t.cfg. Nothing is indexed when neither --instance nor --config is given.
    Re-running is safe: the file is kept, the index entry keeps its name and gets the path.
    """
    here = cwd or Path.cwd()
    registered = bool(instance or config)
    name = instance or DEFAULT_INSTANCE_NAME
    if registered:
        validate_instance_name(name)
    if config and not home:
        config_path = _absolute(config, here)
        home_path = config_path.parent
    else:
        home_path = _absolute(home, here) if home else here
        config_path = _absolute(home_path / (config or DEFAULT_CONFIG_FILE_NAME), here)

    settings_file = SettingsFile(config_path)
    created = settings_file.create_empty()
    try:
        with settings_file.edit() as values:
            TentacleConfig(values).set_home(home_path)
        record = registry.register(name, config_path) if registered else None
    except BaseException:
        if created:
            config_path.unlink(missing_ok=True)
        raise
    return CreatedInstance(None if record is None else record.name, config_path, home_path, created)


def delete_instance(registry: InstanceRegistry, name: str) -> InstanceRecord:
    """delete-instance: remove only the index entry; the config file, home and service stay.

    Unlike Tentacle this works when the config file is already gone, which is exactly when
    someone needs to clean up the entry.
    """
    record = registry.find(name)
    with locked(record.index_file):
        try:
            record.index_file.unlink(missing_ok=True)
        except OSError as error:
            raise ConfigFileError(
                record.index_file,
                f"Unable to delete file as user '{current_user()}': {error.strerror}.",
                remedy="Please check file permissions.",
            ) from error
    return record
