import os
import shutil
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

from core import synth
from core.blend import stamp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- no process of ours left behind
# Every test that starts a process must end it. Workers start in their own session and outlive
# whatever started them, so pytest makes itself the "subreaper" of everything it starts (Linux):
# orphans are re-parented to it instead of to init, and at the end any still alive are listed,
# killed, and fail the run.
def _become_subreaper():
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children():
    """{pid: (state, command line)} of this process's direct children (Linux /proc)."""
    me, out = os.getpid(), {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{name}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == me:
            out[int(name)] = (state, cmd)
    return out


def _end(pids):
    import signal
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass


def pytest_configure(config):
    _become_subreaper()


def pytest_sessionfinish(session, exitstatus):
    kids = _children()
    _end([pid for pid, (state, _) in kids.items() if state == "Z"])  # exited: only to be reaped
    alive = {pid: cmd for pid, (state, cmd) in kids.items() if state != "Z"}
    if alive:
        _end(list(alive))
        lines = "\n".join(f"  {pid}: {cmd}" for pid, cmd in sorted(alive.items()))
        print(f"\nkirei: {len(alive)} process(es) started by the tests were still running at the end "
              f"(now killed); every test must end what it starts:\n{lines}", file=sys.stderr)
        if session.exitstatus == 0:
            session.exitstatus = 1


def picture(width, height, seed):
    """A synthetic anime-style RGB picture, float32 in [0, 1]."""
    return np.asarray(synth.anime_picture(width, height, seed=seed), np.float32) / 255.0


def quantise(x):
    return np.rint(np.clip(x, 0, 1) * 255) / 255.0


@pytest.fixture(scope="session")
def watermark():
    """(alpha, color) of a SAMPLE stamp on 120x160 pictures."""
    return synth.text_watermark(120, 160, opacity=0.5, angle=35)


@pytest.fixture(scope="session")
def stamped_set(watermark):
    """20 stamped 120x160 pictures (8-bit values), and the clean ones."""
    alpha, color = watermark
    clean = [picture(120, 160, seed) for seed in range(20)]
    return [quantise(stamp(c, alpha, color)) for c in clean], clean


@contextmanager
def virtual_display(screen="1024x768x24"):
    """An X server (Xvfb) for the block: yields its DISPLAY (":N"), or "" where there is no Xvfb
    (CI must have one); ended, and waited for, when the block ends. Its messages go to a log
    that `display_report` reads when a client couldn't connect."""
    if not shutil.which("Xvfb"):
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), "CI must provide Xvfb"
        yield ""
        return
    import tempfile
    rfd, wfd = os.pipe()
    log = tempfile.NamedTemporaryFile(prefix="xvfb-", suffix=".log", delete=False)
    # -noreset: Krita's start opens and closes short connections before its window's; by default the
    # server resets when its last client leaves, and a client connecting meanwhile is refused
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", screen, "-nolisten", "tcp", "-noreset"],
                            pass_fds=(wfd,), stdout=log, stderr=log)
    log.close()
    os.close(wfd)
    number = ""
    try:
        import select
        with os.fdopen(rfd) as fh:
            ready, _, _ = select.select([fh], [], [], 60)
            number = fh.readline().strip() if ready else ""
        assert number.isdigit(), f"Xvfb didn't start (it said {number!r}): {display_report(xvfb, log.name, '')}"
        _displays[":" + number] = (xvfb, log.name)
        yield ":" + number
    finally:
        xvfb.terminate()  # not SIGKILL: Xvfb then removes its lock file and socket for the next one
        try:
            xvfb.wait(30)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()
        _displays.pop(":" + number, None)
        os.unlink(log.name)


_displays = {}  # DISPLAY -> (its Xvfb process, its log), while a virtual_display block runs


def display_report(xvfb=None, log=None, display=None):
    """What a failed X client's test should say about the server: alive or not, its socket, its log."""
    if xvfb is None:
        xvfb, log = _displays.get(display, (None, None))
        if xvfb is None:
            return f"no virtual display {display!r} is running"
    sock = f"/tmp/.X11-unix/X{display[1:]}" if display else "?"
    state = "running" if xvfb.poll() is None else f"exited with {xvfb.returncode}"
    with open(log, errors="replace") as fh:
        text = fh.read()[-2000:]
    return (f"Xvfb (pid {xvfb.pid}) {state}; socket {sock} {'exists' if os.path.exists(sock) else 'is missing'}; "
            f"its log:\n{text}")


def run_cli(*args, cwd=ROOT, timeout=600):
    """`python -m core ARGS` in a real subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


class RunningWorker:
    """A real `python -m core serve` process on 127.0.0.1, and what a client needs to reach it."""

    def __init__(self, folder, *args):
        import select
        os.makedirs(str(folder), exist_ok=True)
        self.token_file = os.path.join(str(folder), "token")
        self.log_path = os.path.join(str(folder), "worker.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--token-file", self.token_file,
                                          *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"worker didn't start: {line!r} {open(self.log_path).read()[-2000:]}")
        self.url = line.strip()
        with open(self.token_file) as fh:
            self.token = fh.read().strip()

    def client(self, **kw):
        from core.client import Client
        return Client(url=self.url, token=self.token, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = RunningWorker(tmp_path_factory.mktemp("worker"))
    yield w
    w.stop()


CI_CACHE = os.environ.get("KIREI_CI_CACHE", "/var/cache/kirei-ci")
IN_CHROOT = os.path.join(ROOT, ".ci", "in_chroot.sh")


def host_chroot(name, program, what):
    """The Debian chroot hosts-NAME with real GIMP and Krita that .ci/host_chroots.sh builds, checked
    to hold PROGRAM; where there is none the test is skipped, saying how to build it (CI must have it)."""
    path = os.path.join(CI_CACHE, "hosts-" + name)
    if not (os.path.exists(os.path.join(path, ".kirei-ready")) and os.path.exists(path + program)):
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), f"CI built no {what} chroot at {path}"
        pytest.skip(f"{what} runs in a Debian chroot, and there is none at {path}: build it with "
                    f"`sudo bash .ci/host_chroots.sh` (about 4 minutes and 2 GB each)")
    if os.geteuid() != 0:  # chroot and mount
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), f"CI must run the {what} test as root"
        pytest.skip(f"{what} runs in the chroot at {path}, which needs root")
    return path


PY27_CHROOT = os.environ.get("KIREI_PY27_CHROOT", "/var/cache/kirei-ci/py27-bullseye")


class Python27:
    """A real Python 2.7 (GIMP 2.10's) in the Debian 11 chroot .ci/run builds, with a scratch folder
    inside it: `host` is that folder as seen from here, `inner` as seen by Python 2.7."""

    def __init__(self, name):
        if not os.path.exists(os.path.join(PY27_CHROOT, "usr/bin/python2.7")):
            assert not os.environ.get("KIREI_REQUIRE_PY27"), f"CI built no Python 2.7 chroot at {PY27_CHROOT}"
            pytest.skip(f"no Python 2.7 chroot at {PY27_CHROOT}: see .ci/run (needs root)")
        self.inner = "/tmp/" + name
        self.host = PY27_CHROOT + self.inner
        shutil.rmtree(self.host, ignore_errors=True)
        os.makedirs(self.host)

    def run(self, args, env, timeout=300):
        return subprocess.run([shutil.which("chroot") or "/usr/sbin/chroot", PY27_CHROOT, "/usr/bin/python2.7"]
                              + list(args), env=dict(env, PATH="/usr/bin:/bin"), capture_output=True, text=True,
                              timeout=timeout)

    def remove(self):
        shutil.rmtree(self.host, ignore_errors=True)


@pytest.fixture
def python27(request):
    py = Python27("kirei-" + request.node.name[:40])
    yield py
    py.remove()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A stamped 90x70 picture, its true profile as a PNG file, and the clean picture."""
    from core.profile import Profile, save_profile
    folder = tmp_path_factory.mktemp("scene")
    w, h = 90, 70
    alpha = np.zeros((h, w), np.float32)
    alpha[20:50, 10:80] = 0.4
    color = np.ones((h, w, 3), np.float32)
    clean = picture(w, h, seed=11)
    stamped = stamp(clean, alpha, color)
    path = str(folder / "profile.png")
    save_profile(Profile(alpha, color), path)
    return stamped, path, Profile(alpha, color), clean
