"""configure, proxy, polling-proxy and show-configuration, run as a real program."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tentacle_manager.instances.certificates import generate_certificate
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.registry import SelectedInstance
from tentacle_manager.instances.secrets import OVERRIDE_VARIABLE as SECRET_STORE_VARIABLE
from tentacle_manager.instances.tentacle_config import ProxyKind, TentacleConfigFile
from tests.test_agent_host import TENTACLE_LINE
from tests.test_cli_instances import Cli, setting

T1, T2, T3, T4 = (digit * 40 for digit in "1234")
TRUSTED_KEY = "Tentacle.Communication.TrustedOctopusServers"
RESTART = "These changes require a restart of the Tentacle."


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def trusted(config: Path) -> list[tuple[str, int]]:
    entries = json.loads(setting(config, TRUSTED_KEY) or "[]")
    return [(entry["Thumbprint"], entry["CommunicationStyle"]) for entry in entries]


def test_trust_changes_follow_tentacles_order_and_styles(cli: Cli) -> None:
    config = cli.add_instance("X")

    added = cli.run("configure", f"--trust={T1}", "--trust", T2.lower())

    assert added.returncode == 0, added.stderr
    assert added.stdout == f"Adding 2 trusted Octopus Servers\n{RESTART}\n"
    assert json.loads(setting(config, TRUSTED_KEY) or "")[0] == {
        "Thumbprint": T1,
        "CommunicationStyle": 1,
        "Address": None,
        "Squid": None,
        "SubscriptionId": None,
    }
    replaced = cli.run("configure", f"--trust={T3}", f"--remove-trust={T1}")
    assert replaced.returncode == 0, replaced.stderr
    assert trusted(config) == [(T2, 1), (T3, 1)]

    reset = cli.run("configure", "--noListen=TRUE", f"--trust={T4}", "--reset-trust")

    assert reset.returncode == 0, reset.stderr
    assert trusted(config) == [(T4, 2)]  # reset first, and active because noListen is true
    assert setting(config, "Tentacle.Services.NoListen") == "true"


def test_a_bad_value_fails_in_one_line_naming_the_option_and_changes_nothing(cli: Cli) -> None:
    config = cli.add_instance("X")
    not_a_certificate = cli.root / "junk.pem"
    not_a_certificate.write_text("-----BEGIN CERTIFICATE-----\nnope\n")
    new_home = cli.root / "new-home"
    before = config.read_bytes()

    results = cli.run_all(
        ["configure", "--pollingConnectionCount=0"],
        ["configure", "--pollingConnectionCount=notanumber"],
        ["configure", "--port=abc"],
        ["configure", "--port=70000"],
        ["configure", "--port=10940", f"--trust={T1}", "--noListen=yes"],
        ["configure", "--listenIpAddress=not-an-ip", f"--home={new_home}", f"--trust={T1}"],
        ["configure", "--trust=nonsense"],
        ["configure", f"--trust={not_a_certificate}"],
        ["proxy", "--proxyEnable=true", "--proxyHost=proxy", "--proxyPort=abc"],
    )

    expected = [
        "The polling connection count must be greater than 0, but was 0.",
        "The polling connection count 'notanumber' is not a valid whole number.",
        "--port: 'abc' is not a whole number; it must be a port from 1 to 65535.",
        "--port: Port 70000 is not valid for Tentacle.Services.PortNumber: it must be from 1",
        "--noListen: 'yes' is not valid; it must be true or false.",
        "--listenIpAddress: 'not-an-ip' is not valid for Tentacle.Services.ListenIP",
        "--trust: 'nonsense' is neither a thumbprint (40 hexadecimal characters) nor a "
        "certificate file (PEM or DER).",
        f"--trust: the file '{not_a_certificate}' is not a certificate",
        "--proxyPort: 'abc' is not valid for Octopus.Proxy.ProxyPort",
    ]
    for result, message in zip(results, expected, strict=True):
        assert result.returncode == 1, result.args
        assert result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert config.read_bytes() == before
    assert not new_home.exists()


def test_values_are_written_as_tentacle_writes_them_and_shown_without_secrets(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = cli.add_instance("X")
    monkeypatch.setenv(SECRET_STORE_VARIABLE, "file")
    instance = Instance(SelectedInstance("X", config), machine_home=cli.machine_home)
    instance.install_identity(generate_certificate())
    applications = cli.root / "apps"

    configured = cli.run(
        "configure",
        "--listenIpAddress=any",
        "--port=10940",
        "--noListen=False",
        "--pollingConnectionCount=3",
        f"--appdir={applications}",
    )

    assert configured.returncode == 0, configured.stderr
    assert configured.stdout.splitlines()[-1] == RESTART
    assert "Listen on any IP address" in configured.stdout
    document = config.read_text(encoding="utf-8")
    assert document.startswith("\ufeff<?xml")
    assert "<octopus-settings " in document
    keys = [line.split('"')[1] for line in document.splitlines() if "<set key=" in line]
    assert keys == sorted(keys)
    assert '<set key="Tentacle.Services.NoListen">false</set>' in document
    assert '<set key="Tentacle.Services.ListenIP" />' in document
    assert applications.is_dir()
    exported = cli.root / "configuration.json"

    shown, to_file = cli.run_all(
        ["show-configuration"], ["show-configuration", "--file", str(exported)]
    )

    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.endswith("}\n") and shown.stdout.startswith('{\n  "Octopus": {')
    assert (to_file.stdout, exported.read_text()) == ("", shown.stdout)
    view: dict[str, Any] = json.loads(shown.stdout)
    assert view["Octopus"]["Home"] == str(config.parent)
    tentacle = view["Tentacle"]
    assert tentacle["Services"] == {"ListenIP": None, "NoListen": False, "PortNumber": 10940}
    assert tentacle["Communication"]["PollingConnectionCount"] == 3
    assert tentacle["Deployment"]["ApplicationDirectory"] == str(applications)
    assert tentacle["CertificateThumbprint"] == setting(config, "Tentacle.CertificateThumbprint")
    assert "Certificate" not in tentacle
    assert (setting(config, "Tentacle.Certificate") or "")[4:40] not in shown.stdout
    secrets = tentacle["Secrets"]
    assert secrets["kind"] == "file" and secrets["override"] == "file"
    assert secrets["store"] == f"owner-only file {instance.secret_fallback}"


def test_trusting_certificate_files_keeps_them_and_trusts_their_thumbprints(cli: Cli) -> None:
    config = cli.add_instance("X")
    pem_server, der_server = generate_certificate(), generate_certificate()
    pem_file, der_file = cli.root / "server.pem", cli.root / "server.cer"
    pem_file.write_bytes(pem_server.certificate_pem())
    der_file.write_bytes(der_server.certificate.public_bytes(Encoding.DER))

    result = cli.run("configure", f"--trust={pem_file}", "--trust", str(der_file))

    assert result.returncode == 0, result.stderr
    assert trusted(config) == [(pem_server.thumbprint, 1), (der_server.thumbprint, 1)]
    for server in (pem_server, der_server):
        kept = config.parent / "Trust" / f"{server.thumbprint}.pem"
        assert kept.read_bytes() == server.certificate_pem()
        assert f"Kept the certificate of {server.thumbprint}" in result.stdout


def test_proxy_and_polling_proxy_follow_tentacles_rules(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = cli.add_instance("X")
    monkeypatch.setenv(SECRET_STORE_VARIABLE, "file")
    instance = Instance(SelectedInstance("X", config), machine_home=cli.machine_home)

    def proxy(kind: ProxyKind = ProxyKind.HTTP) -> tuple[bool, str | None, int]:
        settings = TentacleConfigFile(config, instance.cipher).load().proxy(kind)
        return settings.use_default_proxy, settings.host, settings.port

    steps = [
        (["--proxyEnable=true", "--proxyHost=http://127.0.0.1:8888"], (False, "127.0.0.1", 80)),
        (["--proxyPort=3128", "--proxyEnable=False"], (False, None, 3128)),
        (["--proxyEnable=true"], (True, None, 3128)),
    ]
    for options, expected in steps:
        result = cli.run("proxy", *options)
        assert result.returncode == 0, result.stderr
        assert proxy() == expected, options
    assert "Using the default system proxy" in result.stdout

    polling = cli.run(
        "polling-proxy",
        "--proxyEnable=true",
        "--proxyHost=proxy.example",
        "--proxyUsername=svc",
        "--proxyPassword=s3cret-value",
    )

    assert polling.returncode == 0, polling.stderr
    assert "Using custom proxy at: proxy.example" in polling.stdout
    assert proxy(ProxyKind.POLLING) == (False, "proxy.example", 80)
    assert proxy() == (True, None, 3128)
    polling_settings = TentacleConfigFile(config, instance.cipher).load().proxy(ProxyKind.POLLING)
    assert (polling_settings.username, polling_settings.password) == ("svc", "s3cret-value")
    assert "s3cret-value" not in config.read_text(encoding="utf-8")
    # Reference behaviours 29 and 45: every command is in the instance log, password masked.
    log_text = (config.parent / "Logs" / "OctopusTentacle.txt").read_text(encoding="utf-8")
    assert "====  polling-proxy ====" not in log_text and "==== polling-proxy ====" in log_text
    assert "--proxyPassword=********" in log_text and "s3cret-value" not in log_text
    assert all(TENTACLE_LINE.match(line) for line in log_text.splitlines())
