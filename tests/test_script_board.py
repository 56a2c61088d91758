"""The scripts panel's rows, fed from a real service the way the panel polls it."""

from __future__ import annotations

import asyncio
import time

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    ScriptList,
    ScriptStatusRequest,
    ticket,
    utc_now,
)
from tentacle_manager.diagnostics.activity import Activity
from tentacle_manager.diagnostics.script_board import ScriptBoard
from tests.support import start_command, wait_complete, wait_for_status


async def poll(board: ScriptBoard, service: ScriptService) -> None:
    """One round of what the panel does: the list, unseen quick scripts, process trees."""
    board.update(ScriptList(scripts=service.list_scripts(), quarantined=service.quarantined()))
    for name in board.unread_tickets():
        request = ScriptStatusRequest(ticket=ticket(name), last_log_sequence=0)
        board.observe_output(await service.get_status(request))
    for name in board.live_tickets():
        tree = await service.process_tree(ticket(name))
        if tree is not None:
            board.observe_tree(tree, time.monotonic())


async def test_rows_show_state_last_line_and_activity(service: ScriptService, tmp_path) -> None:
    board = ScriptBoard()
    await service.start_script(start_command("quick", "echo first; echo last-line"))
    await wait_complete(service, "quick")
    await service.start_script(start_command("sleeper", "echo going to sleep; sleep 30", mutex="a"))
    await service.start_script(start_command("queued", "echo never", mutex="a"))
    await wait_for_status(service, "sleeper", lambda s: any("sleep" in r.text for r in s.logs))
    for _ in range(3):
        await poll(board, service)
        await asyncio.sleep(0.3)

    rows = {row.ticket: row for row in board.rows(utc_now())}
    assert list(rows)[-1] == "quick"  # finished scripts after live ones
    assert rows["quick"].state == "complete" and rows["quick"].exit_code == 0
    assert rows["quick"].last_line == "last-line" and rows["quick"].activity is None
    assert rows["sleeper"].state == "running" and rows["sleeper"].exit_code is None
    assert rows["sleeper"].last_line == "going to sleep"
    assert rows["sleeper"].activity is not None
    assert rows["sleeper"].activity.activity is Activity.WAITING
    assert rows["sleeper"].mutex == "a" and rows["sleeper"].level == "full"
    assert rows["queued"].state == "queued" and rows["queued"].pid is None
    assert rows["sleeper"].duration is not None and rows["sleeper"].duration.total_seconds() > 0
