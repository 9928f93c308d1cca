"""Who may use the web studio: off this computer, only people with a login.

On a loopback address (127.0.0.1, ::1, localhost) only this computer reaches the studio and no login is
asked. Any other ``--host`` (0.0.0.0, a LAN address, a host name) or a ``--share`` link lets others in,
so the studio starts only with at least one login, from ``--auth-file PATH`` (``user:password`` lines) or
the ``CADENZA_APP_AUTH`` environment variable (one ``user:password``), or with an explicit ``--no-auth``.
A password is never taken from the command line (every user of the machine can read that in ``ps``), and
a login file readable by every user is refused.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from cadenza.errors import ServerSetupError

AUTH_ENV = "CADENZA_APP_AUTH"

Login = tuple[str, str]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this computer only; a host name other than localhost may be
    any interface, so it counts as not loopback."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def read_auth_file(path: str | os.PathLike) -> list[Login]:
    """The logins in ``path``: one ``user:password`` a line (the password is everything after the first
    colon); blank lines and lines starting with ``#`` are skipped.

    Raises:
        ServerSetupError: the file is missing, readable by every user, has no login, or a line that is
            not ``user:password``.
    """
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ServerSetupError(f"the login file {str(file)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ServerSetupError(f"cannot read the login file {str(file)!r}: {exc}") from None
    if os.name == "posix" and mode & stat.S_IROTH:
        raise ServerSetupError(f"the login file {str(file)!r} can be read by every user of this computer; "
                               f"make it private first: chmod 600 {file}")
    logins = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        logins.append(_login(line, f"line {number} of {str(file)!r}"))
    if not logins:
        raise ServerSetupError(f"the login file {str(file)!r} has no login; write one user:password a line")
    return logins


def server_logins(host: str, share: bool, auth_file: str | os.PathLike | None = None, no_auth: bool = False,
                  environ: Mapping[str, str] = os.environ) -> list[Login]:
    """The logins the studio asks for when served on ``host`` (and a public link when ``share``): from
    ``auth_file`` and ``environ[CADENZA_APP_AUTH]``; empty when none are given on a loopback address or
    with ``no_auth``.

    Raises:
        ServerSetupError: others could reach the studio and no login was given without ``no_auth``; a
            login was given with ``no_auth``; the login file or variable is not usable.
    """
    logins = read_auth_file(auth_file) if auth_file else []
    if environ.get(AUTH_ENV):
        logins.append(_login(environ[AUTH_ENV], f"${AUTH_ENV}"))
    if no_auth and logins:
        raise ServerSetupError("--no-auth was given together with a login (--auth-file or $CADENZA_APP_AUTH); "
                               "choose one")
    if not logins and not no_auth and (share or not is_loopback(host)):
        where = "a public --share link" if share else f"--host {host}"
        raise ServerSetupError(f"{where} lets other machines in, so the studio needs a login: give --auth-file "
                               f"PATH (user:password lines, chmod 600) or set {AUTH_ENV}=user:password; "
                               f"--no-auth serves it to anyone who can reach it")
    return logins


def _login(line: str, where: str) -> Login:
    user, colon, password = line.strip("\r\n").partition(":")
    if not colon or not user.strip() or not password:
        raise ServerSetupError(f"{where} is not user:password (both non-empty)")
    return user.strip(), password
