"""Which instance an instance-bound verb works on, from its --instance and --config options.

Every such verb picks its configuration the same way (Tentacle's ApplicationInstanceSelector:
--instance, else --config, else ./Tentacle.config, else the default instance), so the rule and
its error messages live in the instances layer and the verbs only pass their options on.
"""

from __future__ import annotations

import argparse

from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import (
    InstanceRegistry,
    SelectedInstance,
    select_instance,
)


def selected_instance(args: argparse.Namespace) -> SelectedInstance:
    """The instance's name and config file, for verbs that need no secrets (delete-instance)."""
    return select_instance(InstanceRegistry(), instance=args.instance, config=args.config)


def open_instance(args: argparse.Namespace) -> Instance:
    """The instance opened with its secret store, ready to read and change."""
    return Instance(selected_instance(args))
