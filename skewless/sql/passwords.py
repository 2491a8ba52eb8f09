"""The Thrift server's password file (no Spark): `user:pbkdf2_sha256:ITERATIONS:SALT:HASH` lines, checked
by the server's JVM authentication provider (skewless/sql/jvm/PasswordFileAuthenticator.java).

`skewless sql-user add NAME --password-file F` reads the password from the terminal (or one line of
stdin) and writes the file with mode 0600; an existing user's line is replaced.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import os
import re
import secrets
import sys
from pathlib import Path

from skewless.core.errors import UsageError

ITERATIONS = 210_000  # OWASP's figure for PBKDF2-HMAC-SHA256
_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def hash_line(user: str, password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    if not _USER.match(user):
        raise UsageError(f"user name {user!r}: letters, digits and _.@- only, 1-64 characters")
    if len(password) < 12:
        raise UsageError("a password needs at least 12 characters")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    enc = base64.b64encode
    return f"{user}:pbkdf2_sha256:{iterations}:{enc(salt).decode()}:{enc(digest).decode()}"


def add_user(path: Path, user: str, password: str) -> None:
    lines = [ln for ln in (path.read_text().splitlines() if path.is_file() else []) if not ln.startswith(f"{user}:")]
    lines.append(hash_line(user, password))
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    tmp.replace(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("add",), help="add (or replace) a user of `skewless sql --serve`")
    p.add_argument("user")
    p.add_argument("--password-file", required=True, type=Path, help="the file `sql --serve --password-file` reads")


def run(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    add_user(args.password_file, args.user, password)
    print(f"user {args.user} written to {args.password_file}", file=sys.stderr)
    return 0
