"""Helpers shared by the end-to-end tests: where the binaries are, and a
running failoverd whose log the test can read and wait on."""
import os
import re
import signal
import subprocess
import threading
import time

import loopguard

BUILD = os.environ.get("FAILOVERD_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
SRCDIR = os.environ.get("FOD_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
FAILOVERD = os.path.join(BUILD, "failoverd")
FAILOVERCTL = os.path.join(BUILD, "failoverctl")
# What AddressSanitizer, LeakSanitizer and UBSan print when they report.
SANITIZER_RX = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def sanitized_build():
    """True for the ASan+UBSan build, where every run costs ~2x: it
    checks memory, and says nothing about timing."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "FOD_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


# libssh2 1.10 (Debian 12) leaks the two 32-byte curve25519 kex keys of
# a session freed in the middle of its key exchange (_libssh2_curve25519_new
# from kex_method_curve25519_key_exchange; libssh2 issues #282 and #660,
# fixed upstream later). A daemon that stops, or a drill that moves the
# EIP, while an SSH probe is in its handshake hits it now and then.
# Exactly that report, those two allocation sites in that library, is
# let through; any other report, or one more frame, still fails.
LIBSSH2_KEX_LEAK = re.compile(
    r"^\s*#1 0x[0-9a-f]+ +\(\S*/libssh2\.so\.1\+0x29f(98|db)\)$")


def known_library_leak_only(lines):
    """True when every sanitizer report in lines is the libssh2 1.10
    kex leak above (and there is one)."""
    text = list(lines)
    if any("runtime error:" in l or "ERROR: AddressSanitizer" in l
           for l in text):
        return False
    start = [i for i, l in enumerate(text)
             if "ERROR: LeakSanitizer" in l]
    if len(start) != 1:
        return False
    blocks, cur = [], None
    for l in text[start[0] + 1:]:
        if l.startswith("SUMMARY:"):
            break
        if re.match(r"^(Direct|Indirect) leak of ", l):
            cur = [l]
            blocks.append(cur)
        elif cur is not None and l.strip().startswith("#"):
            cur.append(l)
    if not blocks:
        return False
    for b in blocks:
        # 32 bytes a key; one block may hold the keys of several
        # sessions ("64 byte(s) in 2 object(s)").
        m = re.match(r"Direct leak of (\d+) byte\(s\) in (\d+) object",
                     b[0])
        if m is None or int(m.group(1)) != 32 * int(m.group(2)) or \
                len(b) != 3 or "in __interceptor_malloc" not in b[1] or \
                not LIBSSH2_KEX_LEAK.match(b[2]):
            return False
    return True


class Daemon:
    """failoverd in the foreground with its log on a pipe.

    lines holds every line it logged, kept current by a reader thread;
    wait_for() waits until a line matches, so tests wait on events,
    never on sleeps."""

    def __init__(self, conf, env=None, args=()):
        self.conf = conf
        full_env = dict(os.environ)
        # Tests only ever talk to 127.0.0.0/8: unless a test gives its
        # ec2sim, the AWS endpoints point at a port nothing listens on,
        # never at AWS or at 169.254.169.254.
        full_env.setdefault("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9")
        full_env.setdefault("AWS_EC2_METADATA_SERVICE_ENDPOINT",
                            "http://127.0.0.1:9")
        full_env.update(env or {})
        loopguard.check_file(full_env, conf)
        self.proc = subprocess.Popen(
            [FAILOVERD, "-c", conf, "--log-stderr", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=full_env)
        self.lines = []
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self):
        """Reads the daemon's log for as long as it runs, so that the
        daemon never blocks in write(2) on a full pipe, whatever the
        test is doing (a debug-level daemon fills 64 KiB quickly)."""
        fd = self.proc.stderr.fileno()
        partial = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    if partial:
                        self.lines.append(partial.decode(errors="replace"))
                    self._eof = True
                    self._cond.notify_all()
                    return
                *done, partial = (partial + chunk).split(b"\n")
                self.lines.extend(x.decode(errors="replace") for x in done)
                self._cond.notify_all()

    def _read(self, timeout):
        """Waits up to timeout for new lines: True when some came, False
        when none did, None once the log has ended."""
        with self._cond:
            n = len(self.lines)
            self._cond.wait_for(lambda: len(self.lines) > n or self._eof,
                                timeout)
            if len(self.lines) > n:
                return True
            return None if self._eof else False

    def wait_for(self, pattern, timeout=30.0, start=0):
        """Returns the first log line from index start matching pattern.

        The default leaves room for a busy machine (two suites and a
        CPU hog beside them): a test about timing says its own."""
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

    def stop(self, timeout=10.0, check=True):
        """SIGTERM, wait, read the rest of the log; returns the exit code.

        With check (the default), a daemon that did not exit 0 or whose
        log holds a sanitizer report fails the test: under the ASan build
        (scripts/test) a leak or a memory error in failoverd is reported
        only at its exit, and would otherwise go unnoticed. Tests that
        kill the daemon on purpose pass check=False."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._thread.join(timeout)
        if check:
            self.check_exit(rc)
        return rc

    def sanitizer_report(self):
        """The log lines from ASan, LSan or UBSan, if any."""
        return [l for l in self.lines if SANITIZER_RX.search(l)]

    def check_exit(self, rc):
        report = self.sanitizer_report()
        if (rc != 0 or report) and known_library_leak_only(self.lines):
            print("\n[fodtest] libssh2 1.10 kex leak reported (known, "
                  "let through)", flush=True)
            return
        if rc != 0 or report:
            raise AssertionError(
                "failoverd exited with %s%s; log:\n%s"
                % (rc, " and a sanitizer report" if report else "",
                   "\n".join(self.lines[-200:])))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # When the test already failed, its own error is the one to see.
        self.stop(check=exc_type is None)


def ctl(sock, *args, check=True):
    p = subprocess.run([FAILOVERCTL, "-s", sock, *args],
                       capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError("failoverctl %s: rc=%d\n%s%s"
                             % (" ".join(args), p.returncode, p.stdout,
                                p.stderr))
    return p
