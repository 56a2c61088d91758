"""`create-instance`, `delete-instance` and `list-instances`: the instances on this machine.

Names, options, messages and output formats are Tentacle's, so install scripts written for
Tentacle.exe keep working. Beyond Tentacle, create-instance leaves an instance the agent can
start at once: its home layout exists (Logs, Work, Tools, Files) and so does the local admin
certificate that lets the manager and this CLI talk to the agent. delete-instance with
--instance works when the config file is already gone, which is when the entry most needs
removing.
"""

from __future__ import annotations

import argparse
import json

from tentacle_manager.cli.verb import Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import selected_instance
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import (
    InstanceRecord,
    InstanceRegistry,
    SelectedInstance,
    create_instance,
    delete_instance,
)


def _create_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", help="Name of the instance to create")
    parser.add_argument("--config", help="Path to configuration file to create")
    parser.add_argument(
        "--home",
        help="[Optional] Path to the home directory - defaults to the same directory as the "
        "config file",
    )


def _create(args: argparse.Namespace, console: Console) -> int:
    created = create_instance(
        InstanceRegistry(), instance=args.instance, config=args.config, home=args.home
    )
    for line in created.messages:
        console.info(line)
    instance = Instance(SelectedInstance(created.name, created.configuration_file_path))
    admin = instance.admin_tls_files(create=True)
    console.info(f"Local admin certificate: {admin.certificate}")
    return 0


def _no_options(parser: argparse.ArgumentParser) -> None:
    """The verb takes only the options every verb of its kind gets."""


def _delete(args: argparse.Namespace, console: Console) -> int:
    """Tentacle picks the instance as any instance-bound verb does; a config file given by
    --config alone belongs to no index entry, so there is nothing to delete."""
    name = args.instance or selected_instance(args).name
    if name is None:
        console.info("The configuration file is not a registered instance; nothing was deleted.")
        return 0
    record = delete_instance(InstanceRegistry(), name)
    console.info(f"Deleted instance: {record.name}")
    return 0


def _list(args: argparse.Namespace, console: Console) -> int:
    records = InstanceRegistry().list_instances()
    console.payload(_as_json(records) if wants_json(args) else _as_text(records), newline=False)
    return 0


def _as_json(records: list[InstanceRecord]) -> str:
    """Tentacle's indented array, written without a final newline as Tentacle does."""
    return json.dumps(
        [
            {"InstanceName": r.name, "ConfigurationFilePath": str(r.configuration_file_path)}
            for r in records
        ],
        indent=2,
        ensure_ascii=False,
    )


def _as_text(records: list[InstanceRecord]) -> str:
    if not records:
        return "No instances installed"
    return "".join(
        f"Instance '{r.name}' uses configuration '{r.configuration_file_path}'.\n" for r in records
    )


VERBS = [
    Verb(
        "create-instance",
        "Registers a new instance of the Tentacle service",
        _create_options,
        _create,
    ),
    Verb(
        "delete-instance",
        "Deletes an instance of the Tentacle service",
        _no_options,
        _delete,
        instance_bound=True,
    ),
    Verb(
        "list-instances",
        "Lists all installed Tentacle instances",
        _no_options,
        _list,
        read_only=True,
    ),
]
