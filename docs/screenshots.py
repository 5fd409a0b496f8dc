#!/usr/bin/env python3
"""Take README's screenshots from the real applications, under a virtual X server (Xvfb):

    sudo .venv/bin/python docs/screenshots.py                           # both: about 75 s (2 cores)
    sudo .venv/bin/python docs/screenshots.py --only krita --krita 6.0  # one, from another host

  docs/screenshot-gimp.png   GIMP 3 with the sample open and the "Kirei: Remove Watermark & Upscale..."
                             dialog over it (the procedure run interactively, as the Filters menu runs it)
  docs/screenshot-krita.png  Krita's main window with the Kirei docker, after a 2x restore from its
                             Restore button (the new "Kirei x2" layer in the Layers docker)

Re-run it whenever the dialog or the docker changes: it shows whatever the plugins look like now.
Each application gets a throwaway profile with the plugin installed as a user installs it (a copy of
the plugin folder), the sample picture (samples/sample.png), and a real worker on 127.0.0.1 that the
plugins find as a user's would (recorded in a throwaway Kirei config folder, which also holds the
sample's profile stored as "sample").

Hosts: GIMP 3.2 (else 3.0) and Krita 5.3 (else 5.2, else this machine's Krita) from the Debian chroots
that `.ci/host_chroots.sh` builds (run as root: chroot and mount). Needs Xvfb, and xdotool to place
GIMP's windows (there is no window manager): apt-get installs xdotool when it is missing. Not a test.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.client import WORKER_FILE, store_profile  # noqa: E402
from tests.conftest import CI_CACHE, IN_CHROOT, RunningWorker, virtual_display  # noqa: E402

DOCS = os.path.join(ROOT, "docs")
GIMPS = {"3.2": "forky", "3.0": "trixie"}  # newest first; version -> chroot (.ci/host_chroots.sh)
KRITAS = {"5.3": "forky", "5.2": "trixie", "5.1": None, "6.0": "krita6"}  # None: this machine's Krita
KRITA_DEFAULTS = ("5.3", "5.2", "5.1")
GIMP_SIZE, KRITA_SIZE = (1200, 760), (1280, 800)  # the windows, and the X screens they fill
MAX_BYTES = 300 * 1024  # per PNG, for a README
PROFILE_NAME = "sample"


class Failed(Exception):
    """A screenshot that can't be taken; its message says why and what to do."""


# ------------------------------------------------------------------ hosts and tools
def chroot_path(name, program):
    """The chroot hosts-NAME, or None when it isn't built or lacks PROGRAM."""
    path = os.path.join(CI_CACHE, "hosts-" + name)
    ready = os.path.exists(os.path.join(path, ".kirei-ready")) and os.path.exists(path + program)
    return path if ready else None


def pick(kind, versions, wanted, program, defaults):
    """(version, chroot or None) of the host to use: WANTED, else the first of DEFAULTS that is there."""
    for v in [wanted] if wanted else defaults:
        name = versions[v]
        if name is None:
            if shutil.which(program(v)):
                return v, None
        elif chroot_path(name, "/usr/bin/" + program(v)):
            chroot = chroot_path(name, "/usr/bin/" + program(v))
            busy = [ln.split()[1] for ln in open("/proc/self/mounts") if ln.split()[1].startswith(chroot + "/")]
            if busy:
                raise Failed(f"the {kind} {v} chroot {chroot} is in use ({busy[0]} is mounted: a CI run?); "
                             "run this again when it is done")
            return v, chroot
    tried = [v for v in ([wanted] if wanted else defaults)]
    local = [v for v in tried if versions[v] is None]
    raise Failed(f"no {kind} {' or '.join(tried)} here: build the Debian chroots with `sudo bash "
                 f".ci/host_chroots.sh` (they land in {CI_CACHE}/hosts-*)"
                 + (f"; {kind} {local[0]} is this machine's own: apt-get install krita python3-pyqt5" if local else ""))


def check_tools(need_xdotool):
    if os.geteuid() != 0:
        raise Failed("run this as root: the hosts run in chroots (chroot and mount need root)")
    if not shutil.which("Xvfb"):
        raise Failed("Xvfb is missing: apt-get install xvfb")
    from PIL import features
    if not features.check("xcb"):
        raise Failed("this Pillow can't read an X screen (built without XCB): grabbing GIMP's screen needs it")
    if need_xdotool and not shutil.which("xdotool"):
        print("screenshots: installing xdotool (apt-get), which places GIMP's windows on the virtual screen")
        p = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "xdotool"],
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), capture_output=True, text=True)
        if p.returncode or not shutil.which("xdotool"):
            raise Failed("xdotool is missing and apt-get could not install it:\n" + (p.stdout + p.stderr)[-1500:])


def xdotool(display, *args, check=True):
    p = subprocess.run(["xdotool", *map(str, args)], env=dict(os.environ, DISPLAY=display), capture_output=True,
                       text=True)
    if check and p.returncode:
        raise Failed(f"xdotool {' '.join(map(str, args))} failed: {p.stderr.strip()}")
    return p.stdout


def wait_window(display, name, proc, log, seconds):
    """The id of the first visible window whose title matches the regular expression NAME."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        ids = xdotool(display, "search", "--onlyvisible", "--name", name, check=False).split()
        if ids:
            return ids[0]
        if proc.poll() is not None:
            raise Failed(f"the application ended (status {proc.returncode}) before a window {name!r} showed:\n"
                         + tail(log))
        time.sleep(0.3)
    raise Failed(f"no window {name!r} after {seconds} s:\n" + tail(log))


def geometry(display, window):
    """(x, y, width, height) of an X window."""
    g = dict(ln.split("=") for ln in xdotool(display, "getwindowgeometry", "--shell", window).split())
    return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])


def tail(path, n=3000):
    with open(path, errors="replace") as fh:
        return fh.read()[-n:]


def end(proc):
    """Ends a host run: its wrapper (timeout, .ci/in_chroot.sh) passes the signal on and unmounts."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def in_host(chroot, work, args):
    """ARGS as run on the host: in its chroot with WORK at the same path, or here."""
    return ["timeout", "600", *([IN_CHROOT, chroot, "--bind", work] if chroot else []), *args]


def save_png(image, name):
    """docs/NAME, a PNG under MAX_BYTES: reduced to a 256-colour palette, then scaled down, if needed."""
    from PIL import Image
    path = os.path.join(DOCS, name)
    for attempt in range(6):
        image.save(path, optimize=True)
        if os.path.getsize(path) <= MAX_BYTES:
            return path
        if image.mode != "P":
            image = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        else:
            image = image.convert("RGB").resize((image.width * 9 // 10, image.height * 9 // 10), Image.LANCZOS)
    return path


# ------------------------------------------------------------------ GIMP
def gimp_shot(version, chroot, work):
    from PIL import ImageDraw, ImageGrab
    home = os.path.join(work, "gimp3")
    shutil.copytree(os.path.join(ROOT, "plugins", "gimp", "kirei"), os.path.join(home, "plug-ins", "kirei"),
                    symlinks=False)  # as `cp -rL`: kirei_client.py is a link into core/
    with open(os.path.join(home, "gimprc"), "w") as fh:
        fh.write("(show-welcome-dialog no)\n")
    script = shutil.copy(os.path.join(DOCS, "gimp_screenshot.py"), work)
    go = os.path.join(work, "gimp-go")
    log = os.path.join(work, "gimp.log")
    w, h = GIMP_SIZE
    with virtual_display(f"{w}x{h}x24") as display:
        env = dict(os.environ, DISPLAY=display, GIMP3_DIRECTORY=home, KIREI_SHOT_GO=go,
                   KIREI_SHOT_PICTURE=os.path.join(work, "sample.png"),
                   PASS_ENV="DISPLAY GIMP3_DIRECTORY KIREI_CONFIG_DIR KIREI_SHOT_PICTURE KIREI_SHOT_GO")
        with open(log, "wb") as fh:
            proc = subprocess.Popen(in_host(chroot, work, [
                "gimp-" + version, "--batch-interpreter=python-fu-eval", "-b", f"exec(open({script!r}).read())"]),
                env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=work)
        try:
            win = wait_window(display, "GIMP$", proc, log, 240)  # "[Untitled]-1.0 (RGB color ...) 233x330 – GIMP"
            for welcome in xdotool(display, "search", "--name", "^Welcome to GIMP", check=False).split():
                xdotool(display, "windowunmap", welcome)  # GIMP 3.0 shows it on a first start, whatever gimprc says
            xdotool(display, "windowmove", win, 0, 0)
            xdotool(display, "windowsize", win, w, h)
            time.sleep(1.5)
            xdotool(display, "mousemove", w // 2, h // 2)  # over the canvas, for the key below
            xdotool(display, "windowfocus", win)
            xdotool(display, "key", "shift+ctrl+j")  # View > Zoom > Fit Image in Window (locale-free)
            xdotool(display, "mousemove", w - 1, h - 1)  # out of the way: no brush outline on the canvas
            open(go, "w").close()
            dialog = wait_window(display, "^Kirei", proc, log, 120)
            _, _, dw, dh = geometry(display, dialog)
            # to the right of the middle, so that the picture shows beside it
            x, y = min(w * 53 // 100, w - dw), max((h - dh) // 2, 0)
            xdotool(display, "windowmove", dialog, x, y)
            time.sleep(2)
            shot = ImageGrab.grab(xdisplay=display)
        finally:
            end(proc)
    # no window manager, so no frame: a thin edge tells the dialog from the window behind it
    ImageDraw.Draw(shot).rectangle([x - 1, y - 1, x + dw, y + dh], outline=(128, 128, 128))
    return save_png(shot, "screenshot-gimp.png")


# ------------------------------------------------------------------ Krita
def krita_shot(version, chroot, work):
    profile = os.path.join(work, "krita")
    xdg = {f"XDG_{k.upper()}_HOME" if k != "runtime" else "XDG_RUNTIME_DIR": os.path.join(profile, k)
           for k in ("config", "data", "cache", "runtime")}
    for d in xdg.values():
        os.makedirs(d, mode=0o700)
    pykrita = os.path.join(xdg["XDG_DATA_HOME"], "krita", "pykrita")
    shutil.copytree(os.path.join(ROOT, "plugins", "krita", "kirei"), os.path.join(pykrita, "kirei"), symlinks=False)
    shutil.copy(os.path.join(ROOT, "plugins", "krita", "kirei.desktop"), pykrita)
    os.makedirs(os.path.join(pykrita, "kirei_screenshot"))
    shutil.copy(os.path.join(DOCS, "krita_screenshot.py"), os.path.join(pykrita, "kirei_screenshot", "__init__.py"))
    with open(os.path.join(pykrita, "kirei_screenshot.desktop"), "w") as fh:
        fh.write("[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\nX-KDE-Library=kirei_screenshot\n"
                 "X-Python-2-Compatible=false\nName=Kirei screenshots\nComment=docs/screenshots.py only\n")
    with open(os.path.join(xdg["XDG_CONFIG_HOME"], "kritarc"), "w") as fh:  # Krita loads only enabled plugins
        fh.write("[python]\nenable_kirei=true\nenable_kirei_screenshot=true\n")
    out = os.path.join(work, "krita-out")
    os.makedirs(out)
    log = os.path.join(work, "krita.log")
    w, h = KRITA_SIZE
    shot = {"KIREI_SHOT_OUT": out, "KIREI_SHOT_PICTURE": os.path.join(work, "sample.png"),
            "KIREI_SHOT_PROFILE": PROFILE_NAME, "KIREI_SHOT_SIZE": f"{w}x{h}", "KIREI_SHOT_ZOOM": "1.0"}
    with virtual_display(f"{w}x{h}x24") as display:
        env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # the GUI needs the X server
        env.update(xdg, **shot, DISPLAY=display, PASS_ENV=" ".join([*xdg, *shot, "DISPLAY", "KIREI_CONFIG_DIR"]))
        # Krita's embedded Python takes its prefix from the first python3 on PATH: Debian's, with PyQt5
        env["PATH"] = os.pathsep.join(["/usr/bin", "/bin", env.get("PATH", "")])
        with open(log, "wb") as fh:
            proc = subprocess.Popen(in_host(chroot, work, ["krita", "--nosplash"]), env=env, stdout=fh,
                                    stderr=subprocess.STDOUT, cwd=work)
        try:
            proc.wait(600)  # the screenshot plugin quits Krita when it is done
        except subprocess.TimeoutExpired:
            pass
        finally:
            end(proc)
    result = os.path.join(out, "result.json")
    if not os.path.exists(result):
        raise Failed(f"Krita {version} ended without taking the screenshot; its log:\n" + tail(log))
    res = json.load(open(result))
    if "traceback" in res:
        raise Failed(f"the screenshot plugin failed in Krita {version}:\n{res['traceback']}\n" + tail(log, 1500))
    if not res.get("restored"):
        print(f"screenshots: warning: the docker's restore did not finish ({res.get('message')!r}): "
              "the Krita shot shows it unfinished")
    for note in res["notes"]:
        print("screenshots: note:", note)
    print(f"screenshots: Krita {res['krita_version']}: layers {res['layers']}, docker says {res.get('message')!r}")
    from PIL import Image
    return save_png(Image.open(os.path.join(out, "krita-window.png")).convert("RGB"), "screenshot-krita.png")


# ------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", choices=("gimp", "krita"), help="take this one screenshot (default: both)")
    ap.add_argument("--gimp", choices=GIMPS, help="the GIMP to show (default: the newest there is)")
    ap.add_argument("--krita", choices=KRITAS, help="the Krita to show (default: the first there is of "
                    + ", ".join(KRITA_DEFAULTS) + ")")
    ap.add_argument("--keep", action="store_true", help="keep the throwaway folder (logs, profiles)")
    args = ap.parse_args(argv)
    want = [args.only] if args.only else ["gimp", "krita"]
    try:
        check_tools("gimp" in want)
        hosts = {}
        if "gimp" in want:
            hosts["gimp"] = pick("GIMP", GIMPS, args.gimp, lambda v: "gimp-" + v, tuple(GIMPS))
        if "krita" in want:
            hosts["krita"] = pick("Krita", KRITAS, args.krita, lambda v: "krita", KRITA_DEFAULTS)
    except Failed as e:
        sys.exit(f"screenshots: {e}")
    work = tempfile.mkdtemp(prefix="kirei-shots-")
    ok = False
    try:
        shutil.copy(os.path.join(ROOT, "samples", "sample.png"), work)
        config = os.path.join(work, "kirei-config")  # what the plugins and the worker take as the user's
        os.environ["KIREI_CONFIG_DIR"] = config
        for k in ("KIREI_SERVER_URL", "KIREI_TOKEN_FILE"):  # the plugins must find the worker as a user's do
            os.environ.pop(k, None)
        with open(os.path.join(ROOT, "samples", "sample-profile.png"), "rb") as fh:
            store_profile(PROFILE_NAME, fh.read(), config=config)
        t0 = time.time()
        worker = RunningWorker(os.path.join(work, "worker"))
        try:  # recorded as the local worker, which the plugins reuse rather than start their own
            with open(os.path.join(config, WORKER_FILE), "w") as fh:
                json.dump({"url": worker.url, "pid": worker.proc.pid, "token_file": worker.token_file}, fh)
            for what, (version, chroot) in hosts.items():
                t = time.time()
                path = (gimp_shot if what == "gimp" else krita_shot)(version, chroot, work)
                print(f"screenshots: {os.path.relpath(path, ROOT)} ({'GIMP' if what == 'gimp' else 'Krita'} "
                      f"{version}, {os.path.getsize(path) // 1024} KB) in {time.time() - t:.0f} s")
        finally:
            worker.stop()
        print(f"screenshots: done in {time.time() - t0:.0f} s")
        ok = True
    except Failed as e:
        sys.exit(f"screenshots: {e}\n(logs and profiles kept in {work})")
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"screenshots: the throwaway folder is {work}")


if __name__ == "__main__":
    main()
