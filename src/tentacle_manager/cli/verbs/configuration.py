"""`configure`, `proxy`, `polling-proxy` and `show-configuration`: an instance's settings.

Options, messages and the order changes are applied in are Tentacle's. Where we differ:

- Every value is checked before anything is written, and all of a command's changes are saved
  as one transaction, so a bad value (one line naming the option and the rule, exit 1) leaves
  the file as it was. A value that is not a number or a boolean exits 1, not Tentacle's 100.
- --trust takes a certificate file as well as a thumbprint. The agent verifies a server by its
  certificate, so the file is kept under <home>/Trust/ and its thumbprint trusted.
- show-configuration also reports which secret store holds the instance's keys and why, so an
  admin can tell the OS keyring from the owner-only fallback file.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509

from tentacle_manager.cli.verb import RESTART_REMINDER, CliError, Console, Verb
from tentacle_manager.cli.verbs.certificates import write_output_file
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.instances.certificates import (
    CertificateError,
    normalise_thumbprint,
    thumbprint,
)
from tentacle_manager.instances.errors import SettingError
from tentacle_manager.instances.instance import Instance
from tentacle_manager.instances.secrets import diagnose
from tentacle_manager.instances.tentacle_config import (
    APPLICATION_DIRECTORY_KEY,
    HOME_KEY,
    LISTEN_IP_KEY,
    PORT_KEY,
    ConfigureRequest,
    ProxyKind,
    ProxyRequest,
    TentacleConfig,
    parse_polling_connection_count,
)

SECRETS_KEY = "Tentacle.Secrets"
# Tentacle reports its Windows watchdog task here; this product has no watchdog, so it is off.
WATCHDOG_VIEW = {
    "Octopus.Watchdog.Enabled": False,
    "Octopus.Watchdog.Instances": "*",
    "Octopus.Watchdog.Interval": 0,
}
CONFIGURE_OPTIONS = {
    HOME_KEY: "--home",
    APPLICATION_DIRECTORY_KEY: "--app",
    PORT_KEY: "--port",
    LISTEN_IP_KEY: "--listenIpAddress",
}
_WHOLE_NUMBER = re.compile(r"\s*[+-]?[0-9]+\s*")


@contextmanager
def _naming_options(options: Mapping[str, str]) -> Iterator[None]:
    """The layers name the setting a bad value was for; the user typed an option, so the
    message names that too."""
    try:
        yield
    except SettingError as error:
        option = options.get(error.field or "")
        if option is None:
            raise
        raise CliError(f"{option}: {error.message}", error.remedy) from error


def _apply(
    instance: Instance,
    options: Mapping[str, str],
    change: Callable[[TentacleConfig], list[str]],
    console: Console,
) -> list[str]:
    """One transaction: all of a command's changes are saved or none; then its lines are
    printed, so nothing claims a change that was not saved."""
    with _naming_options(options), instance.config_file.edit() as config:
        messages = change(config)
    for line in messages:
        console.info(line)
    return messages


def _boolean(option: str, text: str) -> bool:
    """bool.Parse's rule: true or false in any case."""
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise CliError(f"{option}: '{text}' is not valid; it must be true or false.")
    return value == "true"


def _whole_number(option: str, text: str, rule: str) -> int:
    if not _WHOLE_NUMBER.fullmatch(text):
        raise CliError(f"{option}: '{text}' is not a whole number; {rule}.")
    return int(text)


def _folder(option: str, text: str | None) -> Path | None:
    if text is None:
        return None
    if not text.strip():
        raise CliError(f"{option}: the folder must not be empty.")
    return Path(text)


# --- configure ---------------------------------------------------------------------------------


def _configure_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--homedir", "--home", dest="home", help="Home directory")
    parser.add_argument(
        "--appdir", "--app", dest="app", help="Default directory to deploy applications to"
    )
    parser.add_argument(
        "--port", help="TCP port on which Tentacle should listen to connections (1 to 65535)"
    )
    parser.add_argument(
        "--noListen",
        dest="no_listen",
        help="Suppress listening on a TCP port (intended for polling Tentacles only): true or "
        "false",
    )
    parser.add_argument(
        "--listenIpAddress",
        dest="listen_ip",
        help="IP address on which Tentacle should listen. Default: any",
    )
    parser.add_argument(
        "--pollingConnectionCount",
        dest="polling_connection_count",
        help="The number of connections to open to each polled Octopus Server (at least 1)",
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        help="The Octopus Server to trust: its certificate thumbprint (40 hexadecimal "
        "characters), or the path of its certificate file (PEM or DER), which is kept under "
        "<home>/Trust/ so the agent can verify the server. Repeatable",
    )
    parser.add_argument(
        "--remove-trust",
        action="append",
        default=[],
        help="The thumbprint of the Octopus Server to remove from the trusted list. Repeatable",
    )
    parser.add_argument(
        "--reset-trust", action="store_true", help="Removes all trusted Octopus Servers"
    )


def _configure(args: argparse.Namespace, console: Console) -> int:
    trusted = [_trusted(text) for text in args.trust]
    request = _configure_request(args, tuple(name for name, _ in trusted))
    instance = open_instance(args)
    messages = _apply(
        instance, CONFIGURE_OPTIONS, lambda config: config.configure(request), console
    )
    for certificate in (certificate for _, certificate in trusted if certificate is not None):
        _keep(instance, certificate, console)
    if messages:
        console.warn(RESTART_REMINDER)
    return 0


def _configure_request(args: argparse.Namespace, trust: tuple[str, ...]) -> ConfigureRequest:
    """Every value parsed before anything is written, so a bad one changes nothing."""
    count = args.polling_connection_count
    return ConfigureRequest(
        reset_trust=args.reset_trust,
        remove_trust=tuple(_thumbprint_to_remove(text) for text in args.remove_trust),
        trust=trust,
        home=_folder("--home", args.home),
        app=_folder("--app", args.app),
        port=None
        if args.port is None
        else _whole_number("--port", args.port, "it must be a port from 1 to 65535"),
        no_listen=None if args.no_listen is None else _boolean("--noListen", args.no_listen),
        listen_ip=args.listen_ip,
        polling_connection_count=None if count is None else parse_polling_connection_count(count),
    )


def _trusted(text: str) -> tuple[str, x509.Certificate | None]:
    """A thumbprint as given, else a certificate file: the thumbprint to trust, and the
    certificate when there is one to keep."""
    try:
        return normalise_thumbprint(text), None
    except CertificateError:
        if not Path(text).is_file():
            raise CliError(
                f"--trust: '{text}' is neither a thumbprint (40 hexadecimal characters) nor a "
                "certificate file (PEM or DER)."
            ) from None
    certificate = _read_certificate(Path(text))
    return thumbprint(certificate), certificate


def _read_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"--trust: the file '{path}' cannot be read: {error.strerror}.") from error
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CliError(
            f"--trust: the file '{path}' is not a certificate: it must be PEM or DER."
        ) from None


def _thumbprint_to_remove(text: str) -> str:
    """Thumbprints are compared ignoring case; one stored in another shape by an older tool is
    removed as typed."""
    try:
        return normalise_thumbprint(text)
    except CertificateError:
        if not text.strip():
            raise CliError("--remove-trust: the thumbprint must not be empty.") from None
        return text


def _keep(instance: Instance, certificate: x509.Certificate, console: Console) -> None:
    """Kept once the configuration naming the home is saved, so it lands in that home."""
    try:
        name = instance.keep_trusted_certificate(certificate)
    except OSError as error:
        raise CliError(
            f"--trust: {thumbprint(certificate)} is trusted, but its certificate could not be "
            f"kept under the home's Trust folder: {error.strerror}.",
            "Make the home writable and run the same configure command again.",
        ) from error
    console.info(f"Kept the certificate of {name} so the agent can verify that server")


# --- proxy and polling-proxy -------------------------------------------------------------------


def _proxy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--proxyEnable",
        dest="enable",
        help="Whether to use a proxy: true or false. Without true the proxy is turned off",
    )
    parser.add_argument(
        "--proxyUsername",
        dest="username",
        help="Username to use when authenticating with the proxy",
    )
    parser.add_argument(
        "--proxyPassword",
        dest="password",
        help="Password to use when authenticating with the proxy (stored encrypted)",
    )
    parser.add_argument(
        "--proxyHost",
        dest="host",
        help="The proxy host to use. Leave empty to use the system's default proxy",
    )
    parser.add_argument(
        "--proxyPort",
        dest="port",
        help="The proxy port to use in conjunction with the Host set with proxyHost (default 80)",
    )


def _proxy(kind: ProxyKind, args: argparse.Namespace, console: Console) -> int:
    request = ProxyRequest(
        enable=args.enable is not None and _boolean("--proxyEnable", args.enable),
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
    )
    options = {kind.key("ProxyHost"): "--proxyHost", kind.key("ProxyPort"): "--proxyPort"}
    _apply(
        open_instance(args), options, lambda config: config.configure_proxy(kind, request), console
    )
    return 0


# --- show-configuration ------------------------------------------------------------------------


def _show_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", help="Exports the configuration to a file")


def _show(args: argparse.Namespace, console: Console) -> int:
    """Indented, sorted JSON ending with a newline; never the certificate or proxy settings."""
    instance = open_instance(args)
    secrets = diagnose(instance.secret_service, instance.secret_fallback)
    view = instance.config().configuration_view({**WATCHDOG_VIEW, SECRETS_KEY: secrets})
    text = json.dumps(view, indent=2, ensure_ascii=False) + "\n"
    if args.file is not None:
        write_output_file("--file", args.file, text.encode("utf-8"))
    else:
        console.payload(text, newline=False)
    return 0


VERBS = [
    Verb(
        "configure",
        "Sets Tentacle settings such as the port number and thumbprints",
        _configure_options,
        _configure,
        instance_bound=True,
    ),
    Verb(
        "proxy",
        "Configure the HTTP proxy used by Octopus",
        _proxy_options,
        functools.partial(_proxy, ProxyKind.HTTP),
        instance_bound=True,
    ),
    Verb(
        "polling-proxy",
        "Configure the HTTP proxy used by polling Tentacles to reach the Octopus Server",
        _proxy_options,
        functools.partial(_proxy, ProxyKind.POLLING),
        instance_bound=True,
    ),
    Verb(
        "show-configuration",
        "Outputs the Tentacle configuration",
        _show_options,
        _show,
        instance_bound=True,
        read_only=True,
    ),
]
