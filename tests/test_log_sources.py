"""The logs the viewer offers for an instance: agent log, archives newest first, script outputs."""

from __future__ import annotations

import os
from pathlib import Path

from tentacle_manager.diagnostics.log_sources import log_sources
from tentacle_manager.instances.home import HomeLayout


def test_agent_log_then_archives_by_number_then_newest_script_outputs(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path)
    layout.ensure()
    for number in (10, 0, 2):
        (layout.logs / f"OctopusTentacle.{number}.txt").write_text("old\n")
    (layout.logs / "OctopusTentacle.x.txt").write_text("not an archive\n")
    for age, ticket in enumerate(["newest", "middle", "oldest"]):
        workspace = layout.work / ticket
        workspace.mkdir()
        (workspace / "Output.log").write_text("[]\n")
        os.utime(workspace / "Output.log", (1e9 - age * 100, 1e9 - age * 100))
    (layout.work / "no-output-yet").mkdir()
    (layout.work / "a-file").write_text("")

    sources = log_sources(layout, scripts=2)

    assert [source.path for source in sources] == [
        layout.logs / "OctopusTentacle.txt",  # listed before the agent ever wrote it
        layout.logs / "OctopusTentacle.0.txt",
        layout.logs / "OctopusTentacle.2.txt",
        layout.logs / "OctopusTentacle.10.txt",
        layout.work / "newest" / "Output.log",
        layout.work / "middle" / "Output.log",
    ]
    assert sources[0].label == "Agent log (OctopusTentacle.txt)"
    assert sources[-1].label == "Script output middle"


def test_a_home_without_folders_offers_the_agent_log_only(tmp_path: Path) -> None:
    sources = log_sources(HomeLayout(tmp_path / "missing"))
    assert [source.label for source in sources] == ["Agent log (OctopusTentacle.txt)"]
