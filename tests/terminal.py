"""A child process on a pseudo-terminal, for tests of what a person types."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import time


class Terminal:
    """A child process on a pseudo-terminal: type lines, send Ctrl-C / Ctrl-D, wait for text."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execve(argv[0], argv, env)
        self.seen = ""

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait_for(self, needle: str, timeout: float = 120, after: int = 0) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            at = self.seen.find(needle, after)
            if at >= 0:
                return at + len(needle)
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
                except OSError:
                    break
        raise AssertionError(f"{needle!r} not seen; the terminal showed:\n{self.seen[-3000:]}")

    def close(self, timeout: float = 60) -> int:
        """The exit code, reading what the child still prints (a full terminal would block its exit)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.fd, 65536).decode(errors="replace")
        os.kill(self.pid, 9)
        raise AssertionError(f"the shell did not exit; it showed:\n{self.seen[-3000:]}")
