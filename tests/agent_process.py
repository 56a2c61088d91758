"""A throwaway agent for the crash tests: `python -m tests.agent_process <home> <plan.json>`.

It opens a ScriptService over <home> with fast settings, works through the plan's steps (start a
script, sleep, wait for a text in a script's log, cancel a script) and, all the while, polls the
status of every acknowledged ticket. Everything it learns is printed to stdout as one JSON
object per line, flushed at once, so the test that SIGKILLs it knows exactly what had been
acknowledged and observed before the kill:

    {"event": "open"}                                    the service is open
    {"event": "starting", "ticket": t}                   start_script is about to be called
    {"event": "ack", "ticket": t, "state": s, "exit": e, "next": n}
                                                         start_script returned (acknowledged)
    {"event": "cancel-ack", "ticket": t, ...}            cancel_script returned
    {"event": "status", "ticket": t, "state": s, "exit": e, "next": n, "texts": [...]}
                                                         a new observation: `texts` are the log
                                                         records after the previous observation,
                                                         so the texts of records 1..n are known
    {"event": "started-all"}                             every step has been carried out
    {"event": "all-complete"}                            every planned ticket observed Complete

The plan is JSON: {"commands": {ticket: StartScriptCommand wire JSON}, "big_files": {ticket:
[count, size]}, "steps": [...]} where each step is one of
{"start": t}, {"sleep": seconds}, {"wait_text": [t, text]}, {"cancel": t}.
The program never exits by itself before `lifetime` seconds; the test kills it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tentacle_manager.agent.scripts import ScriptService
from tentacle_manager.contracts import (
    CancelScriptCommand,
    ProcessState,
    ScriptFile,
    ScriptStatusRequest,
    ScriptStatusResponse,
    StartScriptCommand,
    parse,
    ticket,
)
from tests.support import fast_settings

POLL_INTERVAL = 0.01
LIFETIME = 30.0


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _fields(status: ScriptStatusResponse) -> dict[str, Any]:
    return {
        "ticket": status.ticket.task_id,
        "state": int(status.state),
        "exit": int(status.exit_code),
        "next": status.next_log_sequence,
    }


class Observer:
    """Polls every acknowledged ticket and prints each change (new records or a new state)."""

    def __init__(self, service: ScriptService, planned: list[str]):
        self.service = service
        self.planned = planned
        self.known: dict[str, tuple[int, int, int]] = {}  # ticket -> (state, exit, next)
        self.texts: dict[str, list[str]] = {}
        self.all_complete = False

    def acknowledge(self, name: str) -> None:
        self.known.setdefault(name, (-1, 0, 0))
        self.texts.setdefault(name, [])

    async def run(self) -> None:
        while True:
            for name in list(self.known):
                await self.observe(name)
            everything = not self.all_complete and len(self.known) == len(self.planned)
            if everything and all(s == ProcessState.COMPLETE for s, _, _ in self.known.values()):
                self.all_complete = True
                emit("all-complete")
            await asyncio.sleep(POLL_INTERVAL)

    async def observe(self, name: str) -> None:
        state, code, after = self.known[name]
        request = ScriptStatusRequest(ticket=ticket(name), last_log_sequence=after)
        status = await self.service.get_status(request)
        texts = [record.text for record in status.logs]
        now = (int(status.state), int(status.exit_code), status.next_log_sequence)
        if now != (state, code, after) or texts:
            self.known[name] = now
            self.texts[name].extend(texts)
            emit("status", **_fields(status), texts=texts)

    def seen(self, name: str, text: str) -> bool:
        return any(text in line for line in self.texts.get(name, []))


def _command(plan: dict[str, Any], name: str) -> StartScriptCommand:
    command = parse(StartScriptCommand, plan["commands"][name])
    big = plan.get("big_files", {}).get(name)
    if big:
        count, size = big
        files = [ScriptFile(name=f"big-{i}.bin", contents=os.urandom(size)) for i in range(count)]
        command = command.model_copy(update={"files": files})
    return command


async def main(home: Path, plan: dict[str, Any]) -> None:
    service = ScriptService(home, fast_settings())
    await service.open()
    emit("open", pid=os.getpid())
    observer = Observer(service, list(plan["commands"]))
    polling = asyncio.get_running_loop().create_task(observer.run())
    commands = {name: _command(plan, name) for name in plan["commands"]}
    for step in plan["steps"]:
        if "start" in step:
            name = step["start"]
            emit("starting", ticket=name)
            status = await service.start_script(commands[name])
            observer.acknowledge(name)
            emit("ack", **_fields(status))
        elif "sleep" in step:
            await asyncio.sleep(step["sleep"])
        elif "wait_text" in step:
            name, text = step["wait_text"]
            while not observer.seen(name, text):
                await asyncio.sleep(POLL_INTERVAL)
        elif "cancel" in step:
            name = step["cancel"]
            status = await service.cancel_script(CancelScriptCommand(ticket=ticket(name)))
            emit("cancel-ack", **_fields(status))
        else:
            raise ValueError(f"unknown step {step!r}")
    emit("started-all")
    await asyncio.sleep(LIFETIME)
    polling.cancel()
    await service.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())))
