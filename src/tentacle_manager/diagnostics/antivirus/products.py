"""The security products the advisor knows: how to recognise each, and where its exclusions
are made.

Signatures are process images, service names, driver names and packages. The names come from
community lists (reference/users-and-peers.md 2.8), cross-checked against each other because
such lists mislabel names; they are used for diagnosis only, and every match is reported with
the process, service, driver or package that matched, so a wrong guess can be seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Exclusions(StrEnum):
    """Where a product's exclusions are made, which decides what the advisor can check."""

    DEFENDER = "defender"  # this host's Defender preferences, read and written with cmdlets
    CLAMD = "clamd"  # clamd.conf on this host
    CENTRAL = "central"  # the vendor's console, owned by the security team
    NONE = "none"  # the product audits rather than scans: there is nothing to exclude
    UNKNOWN = "unknown"  # we do not know which program it is


CONSOLE_ALERTS = (
    "The exclusion is made in the vendor's console, so nothing changes on this host; the "
    "console's own audit log records who made it."
)


@dataclass(frozen=True)
class Product:
    key: str
    name: str
    exclusions: Exclusions
    where: str  # where its exclusions are made, for the request pack
    alerts: str = CONSOLE_ALERTS  # how the change shows in the security team's monitoring
    processes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()

    def signature(self, kind: str, name: str) -> bool:
        """Whether `name` is one of this product's `kind` names (processes, services, drivers
        or packages); Windows names are case-insensitive, Linux ones are lower case anyway."""
        return name.casefold() in (known.casefold() for known in getattr(self, kind))


DEFENDER = Product(
    "defender",
    "Microsoft Defender Antivirus",
    Exclusions.DEFENDER,
    "this host's Defender preferences (Add-MpPreference), or Group Policy or Intune where "
    "they manage Defender",
    alerts="Each added exclusion logs event 5007 (configuration changed) in the "
    "Microsoft-Windows-Windows Defender/Operational log, and Add-MpPreference with "
    "-ExclusionPath or -ExclusionProcess matches the public Sigma rule for Defender "
    "exclusions added with PowerShell (defense impairment, level medium).",
    processes=("MsMpEng.exe", "NisSrv.exe", "MpDefenderCoreService.exe"),
    services=("WinDefend", "WdNisSvc"),
    drivers=("WdFilter",),
)
DEFENDER_FOR_ENDPOINT = Product(
    "defender-for-endpoint",
    "Microsoft Defender for Endpoint (EDR sensor)",
    Exclusions.CENTRAL,
    "the Microsoft Defender portal; the EDR sensor does not honour Defender Antivirus exclusions",
    processes=("MsSense.exe",),
    services=("Sense",),
)
CROWDSTRIKE = Product(
    "crowdstrike",
    "CrowdStrike Falcon",
    Exclusions.CENTRAL,
    "the Falcon console or API: machine-learning exclusions for paths, IOA exclusions with "
    "ifn_regex (image file name) and cl_regex (command line) for processes",
    processes=("CSFalconService.exe", "CSFalconContainer.exe", "falcond", "falcon-sensor"),
    services=("CSFalconService", "falcon-sensor"),
    drivers=("CSAgent",),
    packages=("falcon-sensor",),
)
RAPID7 = Product(
    "rapid7",
    "Rapid7 Insight Agent",
    Exclusions.CENTRAL,
    "the Rapid7 Insight platform",
    processes=("ir_agent.exe",),
    services=("ir_agent",),
)
SENTINELONE = Product(
    "sentinelone",
    "SentinelOne",
    Exclusions.CENTRAL,
    "the SentinelOne management console",
    processes=("SentinelAgent.exe", "SentinelServiceHost.exe", "SentinelStaticEngine.exe"),
    services=("SentinelAgent",),
    drivers=("SentinelMonitor",),
)
SOPHOS = Product(
    "sophos",
    "Sophos Endpoint",
    Exclusions.CENTRAL,
    "Sophos Central (global exclusions or a threat protection policy)",
    processes=("SAVService.exe", "SophosHealth.exe", "SophosFileScanner.exe", "SSPService.exe"),
    services=("SAVService",),
    drivers=("SAVOnAccess", "sld"),
)
CARBON_BLACK = Product(
    "carbon-black",
    "VMware Carbon Black",
    Exclusions.CENTRAL,
    "the Carbon Black console (reputation and permission rules)",
    processes=("RepMgr.exe", "cb.exe", "carbonsensor.exe"),
    services=("CbDefense", "CarbonBlack"),
    drivers=("CarbonBlackK", "parity"),
)
SYMANTEC = Product(
    "symantec",
    "Symantec Endpoint Protection",
    Exclusions.CENTRAL,
    "Symantec Endpoint Protection Manager (an exceptions policy)",
    processes=("ccSvcHst.exe", "Smc.exe", "Rtvscan.exe"),
    services=("SepMasterService",),
    drivers=("SRTSP",),
)
TREND_MICRO = Product(
    "trend-micro",
    "Trend Micro (Apex One, Deep Security)",
    Exclusions.CENTRAL,
    "the Trend Micro management console (scan exclusion lists)",
    processes=("NTRtScan.exe", "TmListen.exe", "PccNTMon.exe", "ds_agent.exe"),
    services=("ntrtscan", "TmListen", "ds_agent"),
    drivers=("tmactmon", "tmevtmgr"),
)
MCAFEE = Product(
    "mcafee",
    "McAfee / Trellix Endpoint Security",
    Exclusions.CENTRAL,
    "ePolicy Orchestrator (an On-Access Scan policy)",
    processes=("mcshield.exe", "mfemms.exe", "mfevtps.exe", "masvc.exe", "macmnsvc.exe"),
    services=("McShield", "mfemms", "masvc"),
    drivers=("mfehidk",),
)
CLAMAV = Product(
    "clamav",
    "ClamAV (clamd, clamonacc)",
    Exclusions.CLAMD,
    "clamd.conf on this host; clamd and clamonacc read it only when they start",
    alerts="File integrity monitoring of /etc may report the change to clamd.conf; ClamAV "
    "itself does not announce it.",
    processes=("clamd", "clamonacc"),
    services=("clamav-daemon", "clamav-clamonacc", "clamd@scan"),
    packages=("clamav-daemon", "clamd"),
)
AUDITD = Product(
    "auditd",
    "Linux audit (auditd) exec rules",
    Exclusions.NONE,
    "the audit rules (auditctl, /etc/audit/rules.d), usually part of a security baseline",
    alerts="Changing audit rules writes a CONFIG_CHANGE record to the audit log.",
)
UNIDENTIFIED_FANOTIFY = Product(
    "fanotify",
    "Unidentified on-access hook (fanotify)",
    Exclusions.UNKNOWN,
    "the program's own configuration: identify it from its pid first",
    alerts="Unknown until the program is identified.",
)

CATALOGUE = (
    DEFENDER,
    DEFENDER_FOR_ENDPOINT,
    CROWDSTRIKE,
    RAPID7,
    SENTINELONE,
    SOPHOS,
    CARBON_BLACK,
    SYMANTEC,
    TREND_MICRO,
    MCAFEE,
    CLAMAV,
)
PACKAGES = tuple(name for product in CATALOGUE for name in product.packages)
