"""Per-agent settings of the script service, validated with errors that name the field.

The kill switch exists only so that tests can simulate a process that cannot be killed. It is
refused unless a second, test-only flag is also set, so a single stray environment variable can
never leave a production agent unable to stop scripts.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tentacle_manager.agent.process.ladder import LadderTimings
from tentacle_manager.agent.workspace.disk_space import DEFAULT_MINIMUM_FREE_BYTES
from tentacle_manager.contracts import ProblemsError, parse_timespan, validation_problems

DISABLE_KILL_VARIABLE = "TentacleDebugDisableProcessKill_UNSAFE_FOR_PRODUCTION"
UNSAFE_TEST_MODE_VARIABLE = "TENTACLE_UNSAFE_TEST_MODE"
STARTUP_TIMEOUT_VARIABLE = "TentaclePowerShellStartupTimeout"


class SettingsError(ProblemsError):
    """Agent settings that cannot be used (fields are setting names)."""


class ScriptServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interrupt_grace: float = Field(7.5, ge=0, le=3600, description="seconds after SIGINT")
    terminate_grace: float = Field(2.5, ge=0, le=3600, description="seconds after SIGTERM")
    kill_grace: float = Field(2.0, ge=0, le=600, description="seconds to confirm SIGKILL")
    output_holder_grace: float = Field(
        5.0, ge=0, le=600, description="seconds to wait for processes still holding output"
    )
    startup_timeout: float = Field(
        13 * 60, gt=0, description="seconds an interpreter may take to reach a guarded script"
    )
    quarantine_retry_interval: float = Field(30.0, gt=0, le=86400)
    cleaner_interval: float = Field(2 * 3600, gt=0)
    cleaner_delete_older_than: float = Field(24 * 3600, gt=0)
    minimum_free_disk_bytes: int = Field(DEFAULT_MINIMUM_FREE_BYTES, ge=0)
    cancelled_ticket_memory: int = Field(10_000, ge=0, le=1_000_000)
    environment: dict[str, str] = Field(default_factory=dict)
    sensitive_values: tuple[str, ...] = ()
    disable_process_kill: bool = False
    allow_unsafe_test_settings: bool = False

    @model_validator(mode="after")
    def _unsafe_needs_test_mode(self) -> ScriptServiceSettings:
        if self.disable_process_kill and not self.allow_unsafe_test_settings:
            raise ValueError(
                "disable_process_kill is for tests only and needs allow_unsafe_test_settings "
                f"({UNSAFE_TEST_MODE_VARIABLE}=1) as well; refusing to start"
            )
        return self

    @property
    def ladder(self) -> LadderTimings:
        return LadderTimings(self.interrupt_grace, self.terminate_grace, self.kill_grace)

    @classmethod
    def create(cls, **values: object) -> ScriptServiceSettings:
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as error:
            raise SettingsError(validation_problems(error, "settings")) from None

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], **values: object
    ) -> ScriptServiceSettings:
        """Apply Tentacle's environment knobs (and the test-only pair) on top of `values`."""
        if environ.get(DISABLE_KILL_VARIABLE):
            values["disable_process_kill"] = True
        if environ.get(UNSAFE_TEST_MODE_VARIABLE):
            values["allow_unsafe_test_settings"] = True
        if environ.get(STARTUP_TIMEOUT_VARIABLE):
            try:
                timeout = parse_timespan(environ[STARTUP_TIMEOUT_VARIABLE])
            except ValueError as error:
                raise SettingsError({STARTUP_TIMEOUT_VARIABLE: str(error)}) from None
            values["startup_timeout"] = timeout.total_seconds()
        return cls.create(**values)
