"""`new-certificate`, `import-certificate` and `show-thumbprint`: the Tentacle's own identity.

Options, messages and exit codes are Tentacle's. Beyond Tentacle: a file that holds a private
key (--export-file, --export-pfx) is created owner-only; --export-pfx needs --pfx-password
and --pfx-password needs --export-pfx, since an unprotected or silently ignored password is
never what was meant; --from-registry says plainly that it exists only on Windows; and the
certificate is stored encrypted under a key kept by the OS keyring or, without one, an
owner-only file (see instances/instance.py).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import sys
from pathlib import Path

from tentacle_manager.cli.verb import RESTART_REMINDER, CliError, Console, Verb, wants_json
from tentacle_manager.cli.verbs.selection import open_instance
from tentacle_manager.instances.certificates import (
    CertificateError,
    Identity,
    generate_certificate,
    load_identity_file,
)
from tentacle_manager.instances.instance import Instance

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
REGISTRY_KEY = r"Software\Octopus"
REGISTRY_VALUE = "Cert-cn=Octopus Tentacle"
# new-certificate's modes, in the order Tentacle checks them pairwise
_EXCLUSIVE_MODES = (
    ("if_blank", "--if-blank"),
    ("export_file", "--export-file"),
    ("export_pfx", "--export-pfx"),
)


def _given(value: object) -> bool:
    """Tentacle's IsNullOrWhiteSpace test for values, and plain truth for flags."""
    return bool(value.strip()) if isinstance(value, str) else bool(value)


def write_output_file(option: str, path: str, data: bytes, *, private: bool = False) -> None:
    """Write what an option asked for; a `private` file holds a key, so it is made owner-only
    even when it already existed with a wider mode (Tentacle leaves that to the umask)."""
    mode = PRIVATE_FILE_MODE if private else PUBLIC_FILE_MODE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "wb") as file:
            if private:
                os.chmod(path, mode)
            file.write(data)
    except OSError as error:
        raise CliError(
            f"{option}: the file '{path}' cannot be written: {error.strerror}.",
            "Choose a path in a folder this user can write to.",
        ) from error


# --- new-certificate ---------------------------------------------------------------------------


def _new_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-b",
        "--if-blank",
        action="store_true",
        help="Generates a new certificate only if there is none",
    )
    parser.add_argument(
        "-e",
        "--export-file",
        help="DEPRECATED: Exports a new certificate to the specified file as unprotected base64 "
        "text, but does not save it to the Tentacle configuration; for use with the "
        "import-certificate command. The file is readable only by its owner.",
    )
    parser.add_argument(
        "--export-pfx",
        help="Exports the new certificate to the specified file as a password protected pfx, "
        "but does not save it to the Tentacle configuration; for use with the "
        "import-certificate command. Needs --pfx-password.",
    )
    parser.add_argument("--pfx-password", help="The password to use for the exported pfx file")


def _new(args: argparse.Namespace, console: Console) -> int:
    _refuse_modes_together(args)
    _check_pfx_password(args)
    instance = open_instance(args)  # as in Tentacle, the instance must load even for an export
    if _given(args.export_file):
        identity = generate_certificate()
        text = "\ufeff" + base64.b64encode(identity.to_pfx(None)).decode("ascii")
        write_output_file("--export-file", args.export_file, text.encode("utf-8"), private=True)
        _announce(console, f"written to {args.export_file}", identity)
    elif _given(args.export_pfx):
        identity = generate_certificate()
        pfx = identity.to_pfx(args.pfx_password.encode("utf-8"))
        write_output_file("--export-pfx", args.export_pfx, pfx, private=True)
        _announce(console, f"written to {args.export_pfx}", identity)
    else:
        _install_new(instance, args.if_blank, console)
    return 0


def _refuse_modes_together(args: argparse.Namespace) -> None:
    for (first, first_option), (second, second_option) in itertools.combinations(
        _EXCLUSIVE_MODES, 2
    ):
        if _given(getattr(args, first)) and _given(getattr(args, second)):
            raise CliError(
                f"Invalid command: {first_option} and {second_option} cannot be specified together"
            )


def _check_pfx_password(args: argparse.Namespace) -> None:
    if _given(args.export_pfx) and not args.pfx_password:
        raise CliError(
            "--export-pfx needs --pfx-password: the file holds the private key, so it must be "
            "protected by a password that is not empty."
        )
    if args.pfx_password is not None and not _given(args.export_pfx):
        raise CliError("--pfx-password is only used with --export-pfx.")


def _install_new(instance: Instance, if_blank: bool, console: Console) -> None:
    if if_blank and instance.config().certificate_thumbprint is not None:
        console.info("A certificate already exists, no changes will be applied.")
        return
    identity = generate_certificate()
    instance.install_identity(identity)
    _announce(console, "installed", identity)
    console.warn(RESTART_REMINDER)


def _announce(console: Console, outcome: str, identity: Identity) -> None:
    console.info(f"A new certificate has been generated and {outcome}. Thumbprint:")
    console.info(identity.thumbprint)


# --- import-certificate ------------------------------------------------------------------------


def _import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-r",
        "--from-registry",
        action="store_true",
        help="Import the Octopus Tentacle 1.x certificate from the Windows registry (Windows only)",
    )
    parser.add_argument(
        "-f",
        "--from-file",
        help="Import a certificate from the specified file generated by the new-certificate "
        "command, a Personal Information Exchange (PFX) file, or a PEM file holding the "
        "certificate and its private key",
    )
    parser.add_argument("-b", "--from-base64", help="Import a base64-encoded PFX certificate")
    parser.add_argument(
        "--pw",
        "--pfx-password",
        dest="pfx_password",
        help="Personal Information Exchange (PFX) private key password",
    )


def _import(args: argparse.Namespace, console: Console) -> int:
    instance = open_instance(args)
    identity = _identity_to_import(args, console)
    instance.install_identity(identity)
    for warning in identity.warnings:
        console.warn(warning)
    console.info(f"Certificate with thumbprint {identity.thumbprint} imported successfully.")
    console.warn(RESTART_REMINDER)
    return 0


def _identity_to_import(args: argparse.Namespace, console: Console) -> Identity:
    sources = [args.from_registry, args.from_file, args.from_base64]
    given = sum(_given(source) for source in sources)
    if given == 0:
        raise CliError("Please specify the certificate to import.")
    if given > 1:
        raise CliError(
            "Please specify only one of either from-registry or from-file or from-base64"
        )
    password = None if args.pfx_password is None else args.pfx_password.encode("utf-8")
    if _given(args.from_file):
        console.info(f"Importing the certificate stored in {args.from_file}...")
        return load_identity_file(Path(args.from_file), password)  # its errors name the file
    option, encoded = (
        ("--from-registry", _registry_certificate(console))
        if args.from_registry
        else ("--from-base64", args.from_base64)
    )
    try:
        return Identity.from_base64(encoded, password)
    except CertificateError as error:
        raise CliError(f"{option}: {error.message}", error.remedy) from error


def _registry_certificate(console: Console) -> str:
    """Tentacle 1.x kept its certificate in the 64-bit view of HKLM; other systems have none."""
    if sys.platform != "win32":
        raise CliError(
            "--from-registry is only supported on Windows: Tentacle 1.x kept its certificate "
            "in the Windows registry.",
            "Export the certificate on that Windows machine and import it with --from-file.",
        )
    console.info("Importing the Octopus 1.x certificate stored in the Windows registry...")
    import winreg

    access = winreg.KEY_READ | winreg.KEY_WOW64_64KEY
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, REGISTRY_KEY, 0, access) as key:
            value, _ = winreg.QueryValueEx(key, REGISTRY_VALUE)
    except OSError:
        value = None
    if not isinstance(value, str) or not value.strip():
        raise CliError("No Octopus 1.x Tentacle certificate was found.")
    return value


# --- show-thumbprint ---------------------------------------------------------------------------


def _thumbprint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-e", "--export-file", help="Exports the Tentacle thumbprint to a file")
    parser.add_argument(
        "--thumbprint-only",
        action="store_true",
        help="DEPRECATED: Only print out the thumbprint, with no additional text. Accepted and "
        "ignored: the thumbprint is all that is printed.",
    )


def _show_thumbprint(args: argparse.Namespace, console: Console) -> int:
    """Bare text or compact JSON with no newline, as scripts written for Tentacle read it."""
    thumbprint = open_instance(args).config().certificate_thumbprint
    if wants_json(args):
        content = json.dumps({"Thumbprint": thumbprint}, separators=(",", ":"))
    else:
        content = thumbprint or ""
    if _given(args.export_file):
        write_output_file("--export-file", args.export_file, content.encode("ascii"))
    else:
        console.payload(content, newline=False)
    return 0


VERBS = [
    Verb(
        "new-certificate",
        "Creates and installs a new certificate for this Tentacle",
        _new_options,
        _new,
        instance_bound=True,
    ),
    Verb(
        "import-certificate",
        "Replace the certificate that Tentacle uses to authenticate itself",
        _import_options,
        _import,
        instance_bound=True,
    ),
    Verb(
        "show-thumbprint",
        "Show the thumbprint of this Tentacle's certificate",
        _thumbprint_options,
        _show_thumbprint,
        instance_bound=True,
        read_only=True,
    ),
]
