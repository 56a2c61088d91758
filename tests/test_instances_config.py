"""The settings file, the typed Tentacle config over it, and the home layout, on real files."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from tentacle_manager.instances import config_file
from tentacle_manager.instances.config_file import EMPTY_DOCUMENT, SettingsFile
from tentacle_manager.instances.errors import ConfigFileError, SettingError
from tentacle_manager.instances.home import HomeLayout
from tentacle_manager.instances.tentacle_config import (
    CommunicationStyle,
    ConfigureRequest,
    ProxyKind,
    ProxyRequest,
    TentacleConfig,
    TentacleConfigFile,
    TrustedServer,
    parse_polling_connection_count,
)

THUMBPRINT = "A" * 40
HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>\n<octopus-settings '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
)


class ReversingCipher:
    """Reversible and visibly not plaintext; refuses text it did not make, as a real one does."""

    PREFIX = "rev:"

    def encrypt(self, plaintext: str) -> str:
        return self.PREFIX + base64.b64encode(plaintext[::-1].encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        if not ciphertext.startswith(self.PREFIX):
            raise ValueError("the value was not made by this cipher")
        return base64.b64decode(ciphertext[len(self.PREFIX) :]).decode()[::-1]


def write_xml(path: Path, *lines: str) -> Path:
    path.write_text("\n".join([HEADER, *lines, "</octopus-settings>"]), encoding="utf-8")
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "instance" / "Tentacle.config"
    SettingsFile(path).create_empty()
    return path


@pytest.fixture
def config(config_path: Path) -> TentacleConfigFile:
    return TentacleConfigFile(config_path, ReversingCipher())


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# The settings file


def test_create_empty_writes_tentacles_exact_document_once(tmp_path: Path) -> None:
    settings_file = SettingsFile(tmp_path / "new" / "x.config")
    assert settings_file.create_empty() is True
    assert settings_file.path.read_bytes() == EMPTY_DOCUMENT
    assert settings_file.read().items() == []
    assert settings_file.create_empty() is False
    assert settings_file.path.read_bytes() == EMPTY_DOCUMENT


def test_save_writes_tentacles_format_sorted_with_empty_elements(config_path: Path) -> None:
    with SettingsFile(config_path).edit() as values:
        values.set("b.second", "two & <three>")
        values.set("A.first", "1")
        values.set("c.blank", "   ")
        values.set("C.none", None)
    data = config_path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig") == "\n".join(
        [
            HEADER,
            '  <set key="A.first">1</set>',
            '  <set key="b.second">two &amp; &lt;three&gt;</set>',
            '  <set key="c.blank" />',
            '  <set key="C.none" />',
            "</octopus-settings>",
        ]
    )
    snapshot = SettingsFile(config_path).read()
    assert snapshot.get("B.SECOND") == "two & <three>"
    assert snapshot.get("c.blank") is None
    assert snapshot.get("c.none") is None


def test_keys_ignore_case_and_keep_their_first_spelling(config_path: Path) -> None:
    write_xml(config_path, '  <set key="octopus.home">/old</set>')
    with SettingsFile(config_path).edit() as values:
        values.set("Octopus.Home", "/new")
    assert '<set key="octopus.home">/new</set>' in config_path.read_text(encoding="utf-8-sig")


def test_reads_a_file_tentacle_wrote(tmp_path: Path) -> None:
    path = write_xml(
        tmp_path / "t.config",
        '  <set key="Tentacle.Services.NoListen">True</set>',
        '  <set key="Tentacle.Services.PortNumber">10933</set>',
        '  <set key="Tentacle.Services.ListenIP" />',
    )
    config = TentacleConfigFile(path).load()
    assert config.no_listen is True
    assert config.port == 10933
    assert config.listen_ip is None


@pytest.mark.parametrize(
    ("lines", "line", "key", "words"),
    [
        (['  <set key="A">1</set>', '  <set key="B">x & y</set>'], 4, "B", "invalid token"),
        (['  <set key="A">1</set>', '  <set key="B">unfinished'], 5, "B", "mismatched tag"),
        (['  <set key="A">1</set>', '  <value key="B">2</value>'], 4, "A", "<value>"),
        (["  <set>1</set>"], 3, None, "<set key"),
        (['  <set key="A"><b>1</b></set>'], 3, "A", "plain text"),
        (['  <set key="A" secret="1">1</set>'], 3, "A", "attribute 'secret'"),
        (['  <set key="A">1</set>', "  stray"], 4, "A", "outside any <set>"),
    ],
)
def test_a_hand_edited_file_names_file_line_and_key(
    tmp_path: Path, lines: list[str], line: int, key: str | None, words: str
) -> None:
    path = write_xml(tmp_path / "bad.config", *lines)
    with pytest.raises(ConfigFileError) as caught:
        SettingsFile(path).read()
    error = caught.value
    assert (error.path, error.line, error.key) == (path, line, key)
    assert error.one_line().startswith(f"{path}:{line}: ")
    assert words in error.message
    if key is not None:
        assert f"'{key}'" in error.message


def test_a_wrong_root_or_a_doctype_is_refused(tmp_path: Path) -> None:
    wrong_root = tmp_path / "root.config"
    wrong_root.write_text('<?xml version="1.0"?>\n<settings></settings>')
    with pytest.raises(ConfigFileError, match="root element is <settings>"):
        SettingsFile(wrong_root).read()
    doctype = tmp_path / "doctype.config"
    doctype.write_text('<!DOCTYPE x [<!ENTITY a "b">]>\n<octopus-settings/>')
    with pytest.raises(ConfigFileError, match="DOCTYPE"):
        SettingsFile(doctype).read()


def test_an_empty_file_is_an_error_not_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "empty.config"
    path.write_bytes(b"")
    with pytest.raises(ConfigFileError) as caught:
        SettingsFile(path).read()
    assert caught.value.line == 1
    assert str(path) in caught.value.one_line()


def test_duplicate_keys_in_any_case_name_both_lines(tmp_path: Path) -> None:
    path = write_xml(
        tmp_path / "dup.config",
        '  <set key="Octopus.Home">/a</set>',
        '  <set key="Other">x</set>',
        '  <set key="OCTOPUS.HOME">/b</set>',
    )
    with pytest.raises(ConfigFileError) as caught:
        SettingsFile(path).read()
    assert caught.value.line == 5
    assert caught.value.key == "OCTOPUS.HOME"
    assert "line 3 and line 5" in caught.value.message


def test_a_crash_during_save_leaves_the_previous_file_and_no_temp_file(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SettingsFile(config_path).edit() as values:
        values.set("Kept", "before")
    before = config_path.read_bytes()

    def crash(source: object, target: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(config_file.os, "replace", crash)
    with (
        pytest.raises(ConfigFileError, match="Input/output error") as caught,
        SettingsFile(config_path).edit() as values,
    ):
        values.set("Kept", "after")
    assert caught.value.path == config_path
    assert config_path.read_bytes() == before
    assert leftovers(config_path.parent) == []


def test_a_transaction_that_raises_changes_nothing(config_path: Path) -> None:
    with SettingsFile(config_path).edit() as values:
        values.set("A", "1")
    before = config_path.read_bytes()
    with pytest.raises(RuntimeError), SettingsFile(config_path).edit() as values:
        values.set("A", "2")
        values.set("B", "3")
        raise RuntimeError("stop")
    assert config_path.read_bytes() == before


def test_an_edit_that_changes_nothing_does_not_rewrite(config_path: Path) -> None:
    with SettingsFile(config_path).edit() as values:
        values.set("A", "1")
    inode = config_path.stat().st_ino
    with SettingsFile(config_path).edit() as values:
        values.set("a", "1")
    assert config_path.stat().st_ino == inode


def test_a_value_that_cannot_be_stored_is_refused_and_nothing_saved(config_path: Path) -> None:
    with pytest.raises(SettingError) as caught, SettingsFile(config_path).edit() as values:
        values.set("Good", "fine")
        values.set("Bad", "line\rbreak")
    assert caught.value.field == "Bad"
    assert "control characters" in caught.value.message
    assert config_path.read_bytes() == EMPTY_DOCUMENT
    with (
        pytest.raises(SettingError, match="blank or padded"),
        SettingsFile(config_path).edit() as values,
    ):
        values.set(" padded", "x")


def test_a_snapshot_refuses_changes(config_path: Path) -> None:
    with pytest.raises(TypeError, match="edit"):
        SettingsFile(config_path).read().set("A", "1")


def test_concurrent_edits_are_serialised_and_lose_nothing(config_path: Path) -> None:
    inside = threading.Event()
    release = threading.Event()

    def slow_edit() -> None:
        with SettingsFile(config_path).edit() as values:
            values.set("First", "1")
            inside.set()
            release.wait(5)

    def quick_edit() -> None:
        with SettingsFile(config_path).edit() as values:
            values.set("Second", "2")

    first = threading.Thread(target=slow_edit)
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=quick_edit)
    second.start()
    second.join(0.2)
    assert second.is_alive(), "the second edit must wait for the lock"
    release.set()
    first.join(5)
    second.join(5)
    snapshot = SettingsFile(config_path).read()
    assert (snapshot.get("First"), snapshot.get("Second")) == ("1", "2")


def test_a_save_keeps_the_files_mode_and_new_files_are_not_world_readable(
    config_path: Path,
) -> None:
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o640
    config_path.chmod(0o600)
    with SettingsFile(config_path).edit() as values:
        values.set("A", "1")
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


# The typed view


def test_defaults_when_nothing_is_set(config: TentacleConfigFile) -> None:
    view = config.load()
    assert (view.home, view.port, view.listen_ip, view.no_listen) == (None, 10933, None, False)
    assert view.trusted_servers == []
    assert view.polling_connection_count is None
    assert view.application_directory == Path("/home/Octopus/Applications")
    assert view.certificate() is None
    proxy = view.proxy(ProxyKind.HTTP)
    assert (proxy.use_default_proxy, proxy.host, proxy.port, proxy.password) == (
        True,
        None,
        80,
        None,
    )


def test_a_relative_home_is_taken_from_the_config_files_folder(config_path: Path) -> None:
    write_xml(config_path, '  <set key="Octopus.Home">data</set>')
    assert TentacleConfigFile(config_path).load().home == config_path.parent / "data"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "Tentacle.Services.PortNumber",
            "abc",
            "Unable to parse configuration key 'Tentacle.Services.PortNumber' as a 'Int32'. "
            "Value was 'abc'.",
        ),
        (
            "Tentacle.Services.NoListen",
            "yes",
            "Unable to parse configuration key 'Tentacle.Services.NoListen' as a 'Boolean'. "
            "Value was 'yes'.",
        ),
        (
            "Tentacle.Services.PortNumber",
            "70000",
            "Configuration key 'Tentacle.Services.PortNumber' must be a port from 1 to 65535. "
            "Value was '70000'.",
        ),
        (
            "Tentacle.Services.ListenIP",
            "not-an-ip",
            "Unable to parse configuration key 'Tentacle.Services.ListenIP' as a 'IPAddress'. "
            "Value was 'not-an-ip'.",
        ),
    ],
)
def test_a_value_that_does_not_parse_names_key_value_file_and_line(
    config_path: Path, key: str, value: str, message: str
) -> None:
    write_xml(
        config_path, '  <set key="Octopus.Home">/h</set>', f'  <set key="{key}">{value}</set>'
    )
    view = TentacleConfigFile(config_path).load()
    with pytest.raises(ConfigFileError) as caught:
        view.configuration_view()
    assert caught.value.one_line().startswith(f"{config_path}:4: {message}")
    assert caught.value.key == key


def test_a_bad_trusted_server_entry_names_the_entry_and_field(config_path: Path) -> None:
    servers = json.dumps([{"Thumbprint": "A1", "CommunicationStyle": 1}, {"Thumbprint": "B2"}])
    servers = servers.replace('"B2"}', '"B2", "CommunicationStyle": 7}')
    write_xml(
        config_path, f'  <set key="Tentacle.Communication.TrustedOctopusServers">{servers}</set>'
    )
    with pytest.raises(ConfigFileError) as caught:
        _ = TentacleConfigFile(config_path).load().trusted_servers
    assert "as a 'OctopusServerConfiguration[]'" in caught.value.message
    assert "entry 2, CommunicationStyle: must be 0 (None), 1" in caught.value.message
    assert caught.value.line == 3


def test_trusted_servers_read_tentacles_style_names_and_nulls(config_path: Path) -> None:
    servers = (
        '[{"Thumbprint":" abc ","CommunicationStyle":"TentacleActive",'
        '"Address":"https://octo:10943","Squid":"sq-1","SubscriptionId":"poll://x/"},'
        '{"Thumbprint":"def","CommunicationStyle":null}]'
    )
    write_xml(
        config_path, f'  <set key="Tentacle.Communication.TrustedOctopusServers">{servers}</set>'
    )
    first, second = TentacleConfigFile(config_path).load().trusted_servers
    assert (first.thumbprint, first.communication_style, first.squid) == (
        "ABC",
        CommunicationStyle.TENTACLE_ACTIVE,
        "SQ-1",
    )
    assert second.communication_style is CommunicationStyle.NONE


def test_sensitive_values_are_encrypted_and_a_failed_decrypt_hides_the_value(
    config: TentacleConfigFile,
) -> None:
    with config.edit() as view:
        view.set_certificate("UEZYLWJ5dGVz", THUMBPRINT.lower())
        view.configure_proxy(ProxyKind.HTTP, ProxyRequest(password="hunter2"))
    text = config.path.read_text(encoding="utf-8-sig")
    assert "UEZYLWJ5dGVz" not in text
    assert "hunter2" not in text
    loaded = config.load()
    certificate = loaded.certificate()
    assert certificate is not None
    assert (certificate.thumbprint, certificate.pfx_base64) == (THUMBPRINT, "UEZYLWJ5dGVz")
    assert loaded.proxy(ProxyKind.HTTP).password == "hunter2"

    stored = next(v for k, v in config.settings_file.read().items() if k == "Tentacle.Certificate")
    assert stored is not None
    damaged = text.replace(stored, "garbled-by-hand")
    config.path.write_text(damaged, encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        config.load().certificate()
    assert "Unable to decrypt the protected configuration setting 'Tentacle.Certificate'" in (
        caught.value.message
    )
    assert "garbled-by-hand" not in caught.value.one_line()


def test_a_certificate_thumbprint_must_be_a_sha1_thumbprint(config: TentacleConfigFile) -> None:
    with pytest.raises(SettingError) as caught, config.edit() as view:
        view.set_certificate("UEZY", "ABC")
    assert caught.value.field == "Tentacle.CertificateThumbprint"
    assert config.load().certificate_thumbprint is None


def test_configure_trust_writes_tentacles_exact_entry(config: TentacleConfigFile) -> None:
    with config.edit() as view:
        messages = view.configure(ConfigureRequest(trust=("ABC",)))
    assert messages == ["Adding 1 trusted Octopus Servers"]
    assert config.settings_file.read().get("Tentacle.Communication.TrustedOctopusServers") == (
        '[{"Thumbprint":"ABC","CommunicationStyle":1,"Address":null,"Squid":null,'
        '"SubscriptionId":null}]'
    )


def test_no_listen_true_makes_trusts_added_with_it_active(config: TentacleConfigFile) -> None:
    with config.edit() as view:
        view.configure(ConfigureRequest(trust=("OLD",)))
    with config.edit() as view:
        view.configure(ConfigureRequest(trust=("ABC",), no_listen=True))
    styles = {s.thumbprint: s.communication_style for s in config.load().trusted_servers}
    assert styles == {
        "OLD": CommunicationStyle.TENTACLE_PASSIVE,
        "ABC": CommunicationStyle.TENTACLE_ACTIVE,
    }
    assert config.load().no_listen is True
    assert '<set key="Tentacle.Services.NoListen">true</set>' in config.path.read_text(
        encoding="utf-8-sig"
    )


def test_remove_trust_runs_before_trust_and_ignores_case(config: TentacleConfigFile) -> None:
    with config.edit() as view:
        view.configure(ConfigureRequest(trust=("ABC123", "DEF456")))
    with config.edit() as view:
        view.configure(ConfigureRequest(trust=("GHI789",), remove_trust=("abc123",)))
    assert [s.thumbprint for s in config.load().trusted_servers] == ["DEF456", "GHI789"]
    with config.edit() as view:
        view.configure(ConfigureRequest(reset_trust=True, trust=("NEW",)))
    assert [s.thumbprint for s in config.load().trusted_servers] == ["NEW"]


def test_add_or_update_replaces_the_same_endpoint_and_moves_it_last(
    config: TentacleConfigFile,
) -> None:
    active = CommunicationStyle.TENTACLE_ACTIVE
    with config.edit() as view:
        view.add_or_update_trusted_server(TrustedServer.of("ab", active, "https://Octo:443"))
        view.add_or_update_trusted_server(TrustedServer.of("cd"))
        view.add_or_update_trusted_server(TrustedServer.of("ab", active, "https://other"))
        replaced = view.add_or_update_trusted_server(
            TrustedServer.of("AB", active, "https://octo/", "poll://abc/")
        )
    assert replaced is True
    servers = config.load().trusted_servers
    assert [(s.thumbprint, s.address) for s in servers] == [
        ("CD", None),
        ("AB", "https://other"),
        ("AB", "https://octo/"),
    ]
    assert servers[-1].subscription_id == "poll://abc/"


def test_a_bad_trusted_server_from_a_caller_names_the_field() -> None:
    with pytest.raises(SettingError) as caught:
        TrustedServer.of("AB", address="octo:10943")
    assert caught.value.field == "Tentacle.Communication.TrustedOctopusServers"
    assert "Address" in caught.value.message
    with pytest.raises(SettingError, match="non-blank"):
        TrustedServer.of("   ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "notanumber",
            "The polling connection count 'notanumber' is not a valid whole number. Specify a "
            "positive integer, e.g. --pollingConnectionCount=5",
        ),
        ("0", "The polling connection count must be greater than 0, but was 0."),
    ],
)
def test_polling_connection_count_uses_tentacles_messages(
    config: TentacleConfigFile, text: str, message: str
) -> None:
    with config.edit() as view:
        view.set_polling_connection_count(3)
    with pytest.raises(SettingError) as caught, config.edit() as view:
        view.configure(
            ConfigureRequest(polling_connection_count=parse_polling_connection_count(text))
        )
    assert caught.value.message == message
    assert config.load().polling_connection_count == 3


def test_a_zero_count_given_as_a_number_is_refused_too(config: TentacleConfigFile) -> None:
    with pytest.raises(SettingError, match="greater than 0, but was 0"), config.edit() as view:
        view.configure(ConfigureRequest(polling_connection_count=0))
    assert parse_polling_connection_count(" 5 ") == 5


def test_listen_ip_any_clears_and_other_text_must_be_an_address(
    config: TentacleConfigFile,
) -> None:
    with config.edit() as view:
        assert view.configure(ConfigureRequest(listen_ip="::1")) == ["Listen on IP address: ::1"]
    assert config.load().listen_ip == "::1"
    with config.edit() as view:
        assert view.configure(ConfigureRequest(listen_ip="ANY")) == ["Listen on any IP address"]
    assert config.load().listen_ip is None
    assert '<set key="Tentacle.Services.ListenIP" />' in config.path.read_text(encoding="utf-8-sig")
    with pytest.raises(SettingError) as caught, config.edit() as view:
        view.configure(ConfigureRequest(listen_ip="not-an-ip"))
    assert caught.value.field == "Tentacle.Services.ListenIP"


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_the_port_is_range_checked(config: TentacleConfigFile, port: int) -> None:
    with pytest.raises(SettingError, match="from 1 to 65535") as caught, config.edit() as view:
        view.configure(ConfigureRequest(port=port))
    assert caught.value.field == "Tentacle.Services.PortNumber"
    assert config.load().port == 10933


def test_a_failed_configure_changes_nothing_and_creates_no_folder(
    config: TentacleConfigFile, tmp_path: Path
) -> None:
    before = config.path.read_bytes()
    request = ConfigureRequest(
        trust=("ABC",), home=tmp_path / "new-home", port=90210, app=tmp_path / "apps"
    )
    with pytest.raises(SettingError), config.edit() as view:
        view.configure(request)
    assert config.path.read_bytes() == before
    assert not (tmp_path / "new-home").exists()
    assert not (tmp_path / "apps").exists()


def test_configure_home_and_app_are_made_absolute_and_created(
    config: TentacleConfigFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with config.edit() as view:
        messages = view.configure(ConfigureRequest(home=Path("h"), app=Path("a/b"), port=1234))
    assert messages == [
        "Services listen port: 1234",
        f"Home directory set to: {tmp_path / 'h'}",
        f"Application directory set to: {tmp_path / 'a' / 'b'}",
    ]
    loaded = config.load()
    assert (loaded.home, loaded.application_directory, loaded.port) == (
        tmp_path / "h",
        tmp_path / "a" / "b",
        1234,
    )
    assert HomeLayout(tmp_path / "h").logs.is_dir()
    assert (tmp_path / "a" / "b").is_dir()


def test_proxy_enable_with_a_url_keeps_only_the_host(config: TentacleConfigFile) -> None:
    with config.edit() as view:
        messages = view.configure_proxy(
            ProxyKind.HTTP, ProxyRequest(enable=True, host="http://127.0.0.1:8888")
        )
    assert messages == ["Using custom proxy at: 127.0.0.1"]
    proxy = config.load().proxy(ProxyKind.HTTP)
    assert (proxy.use_default_proxy, proxy.host, proxy.port) == (False, "127.0.0.1", 80)


def test_proxy_disable_clears_the_host_and_keeps_the_port(config: TentacleConfigFile) -> None:
    with config.edit() as view:
        view.configure_proxy(ProxyKind.HTTP, ProxyRequest(enable=True, host="proxy", port="3128"))
    with config.edit() as view:
        assert view.configure_proxy(ProxyKind.HTTP, ProxyRequest()) == ["Proxy use is disabled"]
    proxy = config.load().proxy(ProxyKind.HTTP)
    assert (proxy.use_default_proxy, proxy.host, proxy.port) == (False, None, 3128)


def test_proxy_enable_alone_uses_the_default_proxy(config: TentacleConfigFile) -> None:
    with config.edit() as view:
        view.configure_proxy(ProxyKind.POLLING, ProxyRequest(enable=True, username="me", port=""))
    settings = config.settings_file.read()
    assert settings.get("Octopus.Server.Proxy.UseDefaultProxy") == "true"
    assert settings.get("Octopus.Server.Proxy.ProxyUsername") == "me"
    assert settings.get("Octopus.Server.Proxy.ProxyPort") == "80"
    assert settings.get("Octopus.Proxy.UseDefaultProxy") is None


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ProxyRequest(enable=True, host="http://"), "Octopus.Proxy.ProxyHost"),
        (ProxyRequest(enable=True, port="eighty"), "Octopus.Proxy.ProxyPort"),
        (ProxyRequest(enable=True, port="0"), "Octopus.Proxy.ProxyPort"),
    ],
)
def test_a_bad_proxy_option_names_its_key_and_saves_nothing(
    config: TentacleConfigFile, request_: ProxyRequest, field: str
) -> None:
    before = config.path.read_bytes()
    with pytest.raises(SettingError) as caught, config.edit() as view:
        view.configure_proxy(ProxyKind.HTTP, request_)
    assert caught.value.field == field
    assert config.path.read_bytes() == before


def test_configuration_view_is_nested_sorted_and_hides_secrets(
    config: TentacleConfigFile, tmp_path: Path
) -> None:
    with config.edit() as view:
        view.set_home(tmp_path / "home")
        view.set_certificate("UEZY", THUMBPRINT)
        view.configure(ConfigureRequest(trust=("ABC",), polling_connection_count=2))
        view.configure_proxy(ProxyKind.HTTP, ProxyRequest(enable=True, host="p", password="pw"))
    shown = config.load().configuration_view(
        {"Octopus.Watchdog.Enabled": False, "Octopus.Watchdog.Interval": 0}
    )
    assert shown == {
        "Octopus": {
            "Home": str(tmp_path / "home"),
            "Watchdog": {"Enabled": False, "Interval": 0},
        },
        "Tentacle": {
            "CertificateThumbprint": THUMBPRINT,
            "Communication": {
                "PollingConnectionCount": 2,
                "TrustedOctopusServers": [
                    {
                        "Thumbprint": "ABC",
                        "CommunicationStyle": 1,
                        "Address": None,
                        "Squid": None,
                        "SubscriptionId": None,
                    }
                ],
            },
            "Deployment": {"ApplicationDirectory": "/home/Octopus/Applications"},
            "Services": {"ListenIP": None, "NoListen": False, "PortNumber": 10933},
        },
    }
    assert list(shown["Tentacle"]) == [
        "CertificateThumbprint",
        "Communication",
        "Deployment",
        "Services",
    ]


def test_a_view_without_a_cipher_refuses_sensitive_values(config_path: Path) -> None:
    with pytest.raises(TypeError, match="cipher"), TentacleConfigFile(config_path).edit() as view:
        view.configure_proxy(ProxyKind.HTTP, ProxyRequest(password="pw"))


def test_a_view_over_a_snapshot_cannot_be_changed(config: TentacleConfigFile) -> None:
    view: TentacleConfig = config.load()
    with pytest.raises(TypeError, match="edit"):
        view.set_port(1234)


# The home layout


def test_home_layout_creates_private_work_and_logs(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path / "a" / "home")
    layout.ensure()
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in (layout.home, layout.logs, layout.work)
    }
    assert modes == {"home": 0o750, "Logs": 0o750, "Work": 0o750}
    assert layout.tools.is_dir() and layout.files.is_dir()
    assert (layout.work, layout.tools, layout.files) == (
        layout.home / "Work",
        layout.home / "Tools",
        layout.home / "Files",
    )


def test_home_layout_leaves_existing_folders_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    HomeLayout(tmp_path).ensure()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_home_layout_reports_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "Logs").write_text("not a folder")
    with pytest.raises(SettingError) as caught:
        HomeLayout(tmp_path).ensure()
    assert caught.value.field == "Octopus.Home"
    assert str(tmp_path / "Logs") in caught.value.message


def test_the_environment_contributes_settings_only_when_switched_on(tmp_path):
    """Reference behaviour 47: with OCTOPUS_CONTRIBUTE_ENV_SETTINGS=true the variable wins over
    the file when read, and an edit never writes it back; secrets are not taken from it."""
    from tentacle_manager.instances.errors import InstanceError
    from tentacle_manager.instances.tentacle_config import TentacleConfigFile

    path = tmp_path / "Tentacle.config"
    config = TentacleConfigFile(path)
    config.settings_file.create_empty()
    with config.edit() as values:
        values.set_port(10933)
    before = path.read_bytes()
    switched_on = {
        "OCTOPUS_CONTRIBUTE_ENV_SETTINGS": "true",
        "TENTACLE_SERVICE_PORT": "12345",
        "TENTACLE_NO_LISTEN": "true",
        "OCTOPUS_PROXY_PASSWORD": "in-clear",
    }
    assert config.load(switched_on).port == 12345
    assert config.load(switched_on).no_listen is True
    assert config.load({"TENTACLE_SERVICE_PORT": "12345"}).port == 10933
    assert config.load({**switched_on, "OCTOPUS_CONTRIBUTE_ENV_SETTINGS": "no"}).port == 10933
    with config.edit() as values:
        assert values.port == 10933  # an edit sees the file alone
    assert path.read_bytes() == before
    bad = {"OCTOPUS_CONTRIBUTE_ENV_SETTINGS": "true", "TENTACLE_SERVICE_PORT": "abc"}
    with pytest.raises(InstanceError, match=r"Tentacle\.Services\.PortNumber"):
        _ = config.load(bad).port
