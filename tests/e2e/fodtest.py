"""Helpers shared by the end-to-end tests: where the binaries are, and a
running failoverd whose log the test can read and wait on."""
import os
import re
import select
import signal
import subprocess
import time

BUILD = os.environ.get("FAILOVERD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SRCDIR = os.environ.get("FOD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
FAILOVERD = os.path.join(BUILD, "failoverd")
FAILOVERCTL = os.path.join(BUILD, "failoverctl")


class Daemon:
    """failoverd in the foreground with its log on a pipe.

    lines holds every line it logged; wait_for() reads until a line
    matches, so tests wait on events, never on sleeps."""

    def __init__(self, conf, env=None, args=()):
        self.conf = conf
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [FAILOVERD, "-c", conf, "--log-stderr", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=full_env)
        self.lines = []
        self._partial = b""

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stderr], [], [], timeout)
        if not r:
            return False
        chunk = os.read(self.proc.stderr.fileno(), 65536)
        if not chunk:
            return None
        data = self._partial + chunk
        *done, self._partial = data.split(b"\n")
        self.lines.extend(x.decode(errors="replace") for x in done)
        return True

    def wait_for(self, pattern, timeout=15.0, start=0):
        """Returns the first log line from index start matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for i in range(seen, len(self.lines)):
                if rx.search(self.lines[i]):
                    return self.lines[i]
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._read(min(left, 0.2)) is None:
                break
        raise AssertionError("no log line matching %r within %.1fs; log:\n%s"
                             % (pattern, timeout, "\n".join(self.lines)))

    def drain(self, seconds=0.0):
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if self._read(max(left, 0)) is None or left <= 0:
                return

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        while self._read(0):
            pass
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def ctl(sock, *args, check=True):
    p = subprocess.run([FAILOVERCTL, "-s", sock, *args],
                       capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError("failoverctl %s: rc=%d\n%s%s"
                             % (" ".join(args), p.returncode, p.stdout,
                                p.stderr))
    return p
