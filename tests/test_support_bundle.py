"""The support bundle of a real instance (made with the real `tentacle` verbs, with proxy
passwords and a certificate), read back member by member: what is in it, and that no secret
is, even where a log or a caller's section leaked one."""

from __future__ import annotations

import importlib.metadata
import json
import os
import stat
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from tentacle_manager import __version__
from tentacle_manager.contracts import ProblemsError
from tentacle_manager.diagnostics.support_bundle import (
    PRIVATE_KEY_REDACTED,
    REDACTED,
    BundleSection,
    ExtraSection,
    Redactor,
    write_support_bundle,
)
from tentacle_manager.instances.config_file import current_user, parse_settings
from tentacle_manager.instances.instance import CONFIG_KEY_SECRET, TLS_PASSPHRASE_SECRET
from tests.gui_support import Sandbox, run_tentacle, sandbox  # noqa: F401 (fixture)

PROXY_PASSWORD = "Pr0xy-P@ss-7f3a9c"
POLLING_PASSWORD = "P0ll-P@ss-21be44"
DAY = 86400


@pytest.fixture
def secret_instance(sandbox: Sandbox):  # noqa: F811
    """An instance with a certificate, both proxies with passwords, and logs: one fresh that
    leaks a password and a private key (as a careless script's output might), one too old."""
    instance = sandbox.create_instance("Bundled")
    run_tentacle(
        "proxy",
        "--instance=Bundled",
        "--proxyEnable=true",
        "--proxyHost=proxy.example",
        "--proxyPort=3128",
        "--proxyUsername=deploy",
        f"--proxyPassword={PROXY_PASSWORD}",
    )
    run_tentacle(
        "polling-proxy",
        "--instance=Bundled",
        "--proxyEnable=true",
        "--proxyHost=poll.example",
        "--proxyUsername=poller",
        f"--proxyPassword={POLLING_PASSWORD}",
    )
    logs = instance.layout().logs
    key_pem = instance.identity().private_key.private_bytes(  # type: ignore[union-attr]
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    (logs / "leaky.txt").write_bytes(
        b"a careless line: proxy password "
        + PROXY_PASSWORD.encode()
        + b" in the middle\n"
        + key_pem
        + b"after the key\nnot UTF-8: \xff\xfe\n"
    )
    old = logs / "OctopusTentacle.6.txt"
    old.write_text("an old day\n")
    long_ago = time.time() - 10 * DAY
    os.utime(old, (long_ago, long_ago))
    return instance


def secrets_of(instance) -> dict[str, str]:
    config = instance.config()
    stored = config.certificate()
    return {
        "proxy password": PROXY_PASSWORD,
        "polling proxy password": POLLING_PASSWORD,
        "certificate PFX (base64)": stored.pfx_base64,
        "config value key": instance.secrets.get(CONFIG_KEY_SECRET),
        "TLS key passphrase": instance.secrets.get(TLS_PASSPHRASE_SECRET),
    }


async def test_no_secret_reaches_any_member_of_the_bundle(secret_instance, tmp_path: Path) -> None:
    instance = secret_instance
    output = tmp_path / "bundle.zip"
    sections: list[BundleSection] = []
    manifest = await write_support_bundle(
        instance,
        output,
        extra_sections=[
            ExtraSection("prerequisites.json", {"checks": [{"name": "port", "ok": True}]}),
            ExtraSection("av-report.txt", f"the report quoted {POLLING_PASSWORD} by mistake\n"),
        ],
        on_section=sections.append,
    )
    secrets = secrets_of(instance)
    assert all(secrets.values())
    with zipfile.ZipFile(output) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name, data in members.items():
        for what, value in secrets.items():
            assert value.encode() not in data, f"{what} found in {name}"
        assert b"PRIVATE KEY" not in data, f"a private key found in {name}"
        assert b"tm1:" not in data, f"a sealed config value found in {name}"
    # The places where they would have been show that something was taken out.
    assert REDACTED.encode() in members["logs/leaky.txt"]
    assert PRIVATE_KEY_REDACTED.encode() in members["logs/leaky.txt"]
    assert members["logs/leaky.txt"].endswith(b"after the key\nnot UTF-8: \xff\xfe\n")
    assert members["extra/av-report.txt"] == f"the report quoted {REDACTED} by mistake\n".encode()
    assert manifest.masked_values == len(secrets)
    assert {"Tentacle.Certificate", "Octopus.Proxy.ProxyPassword"} <= set(manifest.redacted_keys)
    assert "Octopus.Server.Proxy.ProxyPassword" in manifest.redacted_keys
    assert [s.name for s in sections] == [
        "logs",
        "configuration",
        "instances",
        "service",
        "versions",
        "system",
        "extra: prerequisites.json",
        "extra: av-report.txt",
    ]


async def test_the_bundle_holds_what_support_asks_for(secret_instance, tmp_path: Path) -> None:
    instance = secret_instance
    output = tmp_path / "bundle.zip"
    now = datetime.now(UTC)
    manifest = await write_support_bundle(instance, output, days=7, now=now)
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.partial"))
    with zipfile.ZipFile(output) as archive:
        names = set(archive.namelist())
        read = archive.read
        assert {
            "manifest.json",
            "config/Bundled.config",
            "config/configuration.json",
            "instances.json",
            "service.json",
            "versions.json",
            "system.json",
            "logs/OctopusTentacle.txt",
            "logs/leaky.txt",
        } <= names
        assert "logs/OctopusTentacle.6.txt" not in names  # ten days old
        logs = next(s for s in manifest.sections if s.name == "logs")
        assert logs.note == "1 older log file(s) left out"

        config = parse_settings(Path("Bundled.config"), read("config/Bundled.config"))
        values = {setting.key: setting.value for setting in config}
        assert values["Octopus.Proxy.ProxyPassword"] == REDACTED
        assert values["Octopus.Server.Proxy.ProxyPassword"] == REDACTED
        assert values["Tentacle.Certificate"] == REDACTED
        assert values["Tentacle.CertificateThumbprint"] == instance.config().certificate_thumbprint
        assert values["Octopus.Proxy.ProxyHost"] == "proxy.example"
        assert values["Octopus.Proxy.ProxyUsername"] == "deploy"

        view = json.loads(read("config/configuration.json"))
        assert view["proxies"]["Octopus.Proxy"] == {
            "UseDefaultProxy": False,
            "ProxyHost": "proxy.example",
            "ProxyPort": 3128,
            "ProxyUsername": "deploy",
            "ProxyPassword": REDACTED,
        }
        assert view["settings"]["Octopus"]["Home"] == str(instance.layout().home)

        instances = json.loads(read("instances.json"))
        assert [entry["InstanceName"] for entry in instances] == ["Bundled"]
        service = json.loads(read("service.json"))
        assert service["ServiceName"] == "OctopusDeploy Tentacle: Bundled"
        assert service.get("Status") == "not-installed" or "Error" in service

        versions = json.loads(read("versions.json"))
        assert versions["tentacle-manager"] == __version__
        pyside = importlib.metadata.version("PySide6-Essentials")
        assert versions["packages"]["PySide6-Essentials"] == pyside
        assert versions["qt"] == f"{pyside} (the Qt that PySide6 {pyside} bundles)"
        system = json.loads(read("system.json"))
        assert system["user"]["name"] == current_user()
        assert system["user"]["euid"] == os.geteuid()
        assert system["os"]

        recorded = json.loads(read("manifest.json"))
        assert recorded["instance"] == "Bundled"
        assert recorded["days"] == 7
        assert recorded["created"] == now.isoformat()
        assert [s["name"] for s in recorded["sections"]] == [s.name for s in manifest.sections]


async def test_bad_arguments_name_the_field_and_write_nothing(
    secret_instance, tmp_path: Path
) -> None:
    instance = secret_instance
    with pytest.raises(ProblemsError) as raised:
        await write_support_bundle(
            instance,
            tmp_path / "missing" / "bundle.zip",
            days=0,
            extra_sections=[ExtraSection("../escape.txt", "x")],
        )
    assert raised.value.problems == {
        "days": "must be a whole number of days from 1 to 3650, not 0",
        "output": f"the folder {tmp_path / 'missing'} does not exist",
        "extra_sections": "'../escape.txt' is not a usable file name: 1-100 letters, digits, "
        "'.', '-' or '_', starting with a letter or digit",
    }
    existing = tmp_path / "taken.zip"
    existing.write_bytes(b"keep me")
    with pytest.raises(ProblemsError) as raised:
        await write_support_bundle(instance, existing)
    assert raised.value.problems == {
        "output": f"{existing} already exists; choose another file or delete it first"
    }
    assert existing.read_bytes() == b"keep me"
    await write_support_bundle(instance, existing, overwrite=True)
    assert zipfile.is_zipfile(existing)


def test_the_redactor_drops_key_blocks_and_masks_values_line_by_line() -> None:
    redactor = Redactor(["hunter22", None, "abc", "hunter2222"])
    text = (
        "user hunter2222 and hunter22\n"
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        "inline -----BEGIN PRIVATE KEY-----xyz-----END PRIVATE KEY----- tail abc\n"
    )
    assert redactor.text(text) == (
        f"user {REDACTED} and {REDACTED}\n"
        f"{PRIVATE_KEY_REDACTED}\n"
        "\n"
        f"inline {PRIVATE_KEY_REDACTED} tail abc\n"
    )
    assert redactor.count == 2  # "abc" is too short to mask without mangling ordinary text
