"""The folders under a Tentacle home (reference section 6), named once for every layer."""

from __future__ import annotations

from pathlib import Path

from tentacle_manager.instances.errors import SettingError

PRIVATE_MODE = 0o750


class HomeLayout:
    """Where an instance keeps its work, logs, tools and package cache.

    Work holds script workspaces and Logs the agent's log, both of which can show what scripts
    printed, so they (and the home holding them) are not readable by other users. Tools and
    Files hold what the server pushes and get the default mode.
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @property
    def work(self) -> Path:
        return self.home / "Work"

    @property
    def logs(self) -> Path:
        return self.home / "Logs"

    @property
    def tools(self) -> Path:
        return self.home / "Tools"

    @property
    def files(self) -> Path:
        return self.home / "Files"

    def ensure(self) -> None:
        """Create the missing folders; existing ones keep their mode, since they may be shared."""
        for folder, mode in (
            (self.home, PRIVATE_MODE),
            (self.logs, PRIVATE_MODE),
            (self.work, PRIVATE_MODE),
            (self.tools, None),
            (self.files, None),
        ):
            _make_folder(folder, mode)


def _make_folder(folder: Path, mode: int | None) -> None:
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        if folder.is_dir():
            return
        raise SettingError(
            "Octopus.Home",
            f"Cannot create the home folder {folder}: a file with that name is in the way.",
            "Choose another home directory, or move the file.",
        ) from None
    except OSError as error:
        raise SettingError(
            "Octopus.Home",
            f"Cannot create the home folder {folder}: {error.strerror}.",
            "Choose a home directory this user can write to.",
        ) from error
    if mode is not None:
        folder.chmod(mode)  # mkdir's mode is cut by the umask; the rule is the exact mode
