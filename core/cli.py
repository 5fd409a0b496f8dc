"""The command line: `python -m core restore ...` and `python -m core estimate ...`.

The contract is in ../shared/DESIGN.md. Errors are one line, `kirei: error: ...`, with a
non-zero exit; nothing is half-written (outputs are written atomically). In a batch, a bad
input fails alone and the others are still restored (exit 1 then).
"""
import argparse
import os
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

from tqdm import tqdm

from . import __version__, imageio
from .devices import DEVICES, resolve_device
from .errors import KireiError
from .jpeg_traces import went_through_jpeg
from .estimate import estimate_profile, preview
from .models import DEFAULT_MODEL
from .pipeline import METHODS, SCALES, Options, check_profile_size, restore_picture
from .profile import load_profile, save_profile
from .protocol import DEFAULT_MAX_BODY_MB, DEFAULT_MAX_PIXELS
from .tiling import DEFAULT_TILE

EXIT_FAILED_INPUTS = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3  # estimate: no watermark, or none that can be trusted; nothing written
# blind removal: a batch with at least this many pictures of one size is
# assumed to share its watermark, which is then measured from the batch itself
BLIND_BATCH_MIN = 3
BLIND_BATCH_MAX = 40


def say(message):
    print(f"kirei: {message}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        command = self.prog.split()[-1]
        say(f"error: {message} (see `python -m core{'' if command == 'core' else ' ' + command} --help`)")
        sys.exit(EXIT_USAGE)


def build_parser():
    p = _Parser(prog="python -m core", description="Kirei: remove a stamped watermark and upscale anime pictures.")
    p.add_argument("--version", action="version", version=f"kirei {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("restore", help="remove the watermark and upscale pictures",
                       description="Writes OUTDIR/<stem>.png for every input: same mode, size x scale.")
    r.add_argument("inputs", nargs="+", metavar="INPUT")
    r.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    r.add_argument("--scale", type=int, choices=SCALES, default=2)
    wm = r.add_mutually_exclusive_group()
    wm.add_argument("--profile", metavar="P.png", help="the watermark's profile (from `estimate`)")
    wm.add_argument("--no-dewatermark", action="store_true", help="upscale only")
    r.add_argument("--method", choices=METHODS, default=None,
                   help="learned (the model; the default when its weights are installed) or classic")
    r.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                   help=f"the learned model: {DEFAULT_MODEL} (default, best), kirei-fast (for slow machines), "
                        "or a .safetensors file; `python -m core models` lists them")
    r.add_argument("--jpeg", choices=JPEG_CHOICES, default="auto",
                   help="whether the inputs went through JPEG (the model then cleans its blocks and ringing too); "
                        "auto: a JPEG file, or JPEG's traces in the pixels of another (default auto)")
    r.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    r.add_argument("--tile", type=int, default=DEFAULT_TILE, metavar="N",
                   help=f"tile size in input pixels, bounds memory (default {DEFAULT_TILE})")

    e = sub.add_parser("estimate", help="measure the watermark shared by several pictures",
                       description="Writes an RGBA PNG profile: RGB = watermark colour, A = opacity.")
    e.add_argument("inputs", nargs="+", metavar="INPUT")
    e.add_argument("-o", "--output", required=True, metavar="P.png")
    e.add_argument("--preview", action="store_true",
                   help="also write the profile over a grey checkerboard beside it, as P.preview.png")
    e.add_argument("--force", action="store_true",
                   help="write the profile even when the checks find it implausible (default: refuse, exit 3)")

    sub.add_parser("models", help="list the installed models: size, speed and scores",
                   description="The models in core/weights, with what their records say.")

    v = sub.add_parser("serve", help="run the worker that GIMP and Krita talk to (HTTP, see docs/protocol.md)",
                       description="Prints the URL it listens on as its first line of output.")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    v.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    v.add_argument("--token-file", metavar="F",
                   help="file holding the bearer token (made, mode 0600, if missing; default: the config folder's)")
    v.add_argument("--idle-exit", type=float, default=0, metavar="SECONDS",
                   help="exit after this long without requests or jobs (default 0: never)")
    v.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    v.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest region, in pixels")
    v.add_argument("--max-body-mb", type=int, default=DEFAULT_MAX_BODY_MB, help="largest request, in MiB")
    t = sub.add_parser("train", help="train the model (see core/train.py), or export a run's weights",
                       description="Resumes from OUT/checkpoint.pt when there is one.")
    from .train import add_arguments
    add_arguments(t)
    return p


JPEG_CHOICES = {"auto": None, "yes": True, "no": False}  # what --jpeg says of the inputs (None: look)
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def expand_inputs(inputs):
    """Inputs as given, with each folder replaced by the pictures in it (sorted by name)."""
    out = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path)
                           if f.lower().endswith(PICTURE_EXTENSIONS) and not f.startswith("."))
            if not found:
                say(f"{path}: a folder with no pictures in it")
            out.extend(found)
        else:
            out.append(path)
    return out


def _identities(path):
    """What makes another path the same file: its entry (the folder resolved, as a write replaces
    the entry) and, when it exists, the file it leads to (links and hard links included)."""
    folder, base = os.path.split(os.path.abspath(path))
    ids = {os.path.normcase(os.path.join(os.path.realpath(folder), base))}
    try:
        st = os.stat(path)
        ids.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    return ids


def _owners(inputs):
    """{identity: input} (see _identities), to find the input a path would overwrite."""
    return {i: p for p in reversed(inputs) for i in _identities(p)}


def _overwritten_input(out, owners):
    """The input (or other file in owners) that writing `out` would overwrite, or None."""
    return next((owners[i] for i in _identities(out) if i in owners), None)


def plan_outputs(inputs, folder, profile=None):
    """{input: output} for every input that can be written, and an error for each that can't.

    Every planned output is checked against every input and the profile (same path or same file)
    before anything is written: with a.jpg and a.png in D, `-o D D` must not write the restored
    a.jpg over a.png, nor `--profile D/wm.png -o D D/wm.jpg` the restored wm.jpg over the profile.
    """
    plan, errors, planned = {}, [], set()
    owners = _owners(list(inputs) + ([profile] if profile else []))
    for path in inputs:
        out = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + ".png")
        victim = _overwritten_input(out, owners)
        if victim is not None:
            which = ("this input" if victim == path else f"the input {victim}" if victim != profile
                     else f"the watermark profile {victim}")
            errors.append(f"{path}: its output {out} would overwrite {which}; choose another -o folder")
        elif _identities(out) & planned:
            errors.append(f"{path}: another input already writes {out}; rename one of them")
        else:
            plan[path] = out
            planned |= _identities(out)
    return plan, errors


def check_writable_folder(folder):
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise KireiError(f"can't write to the output folder {folder}: it is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise KireiError(f"can't write to the output folder {folder}: {e.strerror or e}") from None


@contextmanager
def output_folder(folder):
    """The output folder, checked writable; made if missing, and removed again (with the parents
    made for it) if nothing was written into it: a failed run leaves no empty folder behind."""
    made, f = [], os.path.abspath(folder)
    while not os.path.lexists(f):
        made.append(f)  # deepest first
        f = os.path.dirname(f)
    try:
        check_writable_folder(folder)
        yield
    finally:
        for d in made:
            try:
                os.rmdir(d)  # only ever an empty folder
            except OSError:
                break


def _sizes(paths):
    """Each readable input's (width, height), read from its header only (cheap, even for a bomb)."""
    sizes = {}
    for p in paths:
        try:
            sizes[p] = imageio.read_size(p)
        except KireiError:
            pass  # it fails on its own, with its own message, when its turn comes
    return sizes


def _blind_profiles(paths, method):
    """A profile measured from each large enough group of same-size inputs.

    A watermark measured over many pictures is more exact than any single-picture guess, so
    both methods use it; the learned model removes the rest (single pictures) blind.
    """
    profiles = {}
    sizes = _sizes(paths)
    for size, count in Counter(sizes.values()).items():
        group = [p for p in paths if sizes.get(p) == size][:BLIND_BATCH_MAX]
        if count < BLIND_BATCH_MIN:
            if method == "classic":
                say(f"blind: {count} picture(s) of {size[0]}x{size[1]}: too few to measure a watermark from "
                    f"(at least {BLIND_BATCH_MIN}); they are upscaled only. Give --profile to remove a known one.")
            continue
        pictures = []
        for p in group:
            try:
                px = imageio.load_picture(p).pixels
            except KireiError:
                continue  # it fails on its own, with its own message, when its turn comes
            if px.shape[2] >= 3:
                pictures.append(px[..., :3])
        if len(pictures) < BLIND_BATCH_MIN:
            continue
        found = estimate_profile(pictures)
        if not found.usable:
            rest = "" if method == "classic" else "; each is cleaned on its own"
            say(f"blind: {found.summary()} ({count} pictures of {size[0]}x{size[1]})"
                + (f"; the profile is not used{rest}" if found.found else rest))
            continue
        say(f"blind: {found.summary()} ({size[0]}x{size[1]})")
        profile = found.profile
        profiles[size] = profile
    return profiles


def choose_method(requested, model=DEFAULT_MODEL):
    """--method as given (learned: one clear error if the model's weights are missing or damaged),
    else the default: learned when its weights are whole, classic otherwise, with a warning when
    they are there but damaged (weights merely not installed are the documented fallback). A
    model named on purpose (not the default) must be there."""
    from .weights_io import verify, weights_path
    if requested == "classic":
        return requested
    try:
        verify(model)
        return "learned"
    except KireiError as e:
        if requested == "learned" or model != DEFAULT_MODEL:
            raise
        if os.path.exists(weights_path(model)):
            say(f"warning: {e}; restoring with the classic method")
        return "classic"


def cmd_restore(args):
    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise KireiError("no pictures to restore")
    resolve_device(args.device)
    if args.tile < 16:
        raise KireiError(f"--tile must be at least 16 pixels, not {args.tile}")
    profile = load_profile(args.profile) if args.profile else None
    method = choose_method(args.method, args.model)
    plan, refused = plan_outputs(inputs, args.output, args.profile)
    for message in refused:
        say(f"error: {message}")
    with output_folder(args.output):
        failed, written = _restore_all(plan, profile, method, args)
    print(f"{len(written)} picture(s) written to {args.output}" +
          (f", {len(failed) + len(refused)} failed" if failed or refused else ""))
    return EXIT_FAILED_INPUTS if failed or refused else 0


def _restore_all(plan, profile, method, args):
    """Restore each input to its planned output; a bad input fails alone. -> (failed, written)."""
    blind_mode = not args.profile and not args.no_dewatermark
    blind = _blind_profiles(list(plan), method) if blind_mode else {}
    options = Options(scale=args.scale, method=method, device=args.device, tile=args.tile, blind=blind_mode,
                      model=args.model)
    failed, written = [], []
    for path, out in tqdm(plan.items(), desc="restoring", unit="picture", file=sys.stderr, disable=None):
        try:
            picture = imageio.load_picture(path)
            use = profile if profile is not None else blind.get(picture.size)
            if use is not None:
                check_profile_size(use.size, *picture.size, name=path)
            said = JPEG_CHOICES[args.jpeg]
            if said is None and picture.format == "JPEG":
                said = True
            jpeg = method == "learned" and went_through_jpeg(picture.pixels, said)
            imageio.save_picture(restore_picture(picture, use, replace(options, jpeg=jpeg)), out)
            written.append(out)
        except KireiError as e:
            failed.append(path)
            tqdm.write(f"kirei: error: {e}", file=sys.stderr)
        except OSError as e:
            failed.append(path)
            tqdm.write(f"kirei: error: {path}: can't write {out}: {e.strerror or e}", file=sys.stderr)
        except MemoryError:
            failed.append(path)
            tqdm.write(f"kirei: error: {path}: out of memory; try a smaller --tile", file=sys.stderr)
        except Exception as e:  # an engine bug must not take the rest of the batch down
            failed.append(path)
            tqdm.write(f"kirei: error: {path}: unexpected failure ({type(e).__name__}: {e})", file=sys.stderr)
    return failed, written


def _read_same_size(paths):
    """{path: RGB pixels} of the readable inputs of the most common size, and that size; the
    others are left out, each with one line."""
    pictures = {}
    for path in tqdm(paths, desc="reading", unit="picture", file=sys.stderr, disable=None):
        try:
            pic = imageio.load_picture(path)
            px = pic.pixels[..., :3] if pic.channels >= 3 else pic.pixels[..., :1].repeat(3, axis=2)
            pictures[path] = px
        except KireiError as e:
            tqdm.write(f"kirei: error: {e} (left out)", file=sys.stderr)
    sizes = Counter((p.shape[1], p.shape[0]) for p in pictures.values())
    if not sizes:
        raise KireiError("none of the inputs could be read")
    size = sizes.most_common(1)[0][0]
    for path, px in list(pictures.items()):
        if (px.shape[1], px.shape[0]) != size:
            say(f"{path}: {px.shape[1]}x{px.shape[0]}, not {size[0]}x{size[1]} like the others (left out)")
            del pictures[path]
    return pictures, size


def cmd_estimate(args):
    from .estimate import MIN_PICTURES
    args.inputs = expand_inputs(args.inputs)
    if os.path.isdir(args.output):
        raise KireiError(f"-o {args.output} is a folder: name the profile file to write, e.g. "
                         f"{os.path.join(args.output, 'profile.png')}")
    victim = _overwritten_input(args.output, _owners(args.inputs))
    if victim is not None:
        raise KireiError(f"the profile {args.output} would overwrite the input {victim}")
    if len(args.inputs) < MIN_PICTURES:
        raise KireiError(f"estimate needs at least {MIN_PICTURES} pictures that carry the same watermark, "
                         f"got {len(args.inputs)}")
    with output_folder(os.path.dirname(os.path.abspath(args.output))):
        pictures, size = _read_same_size(args.inputs)
        with tqdm(total=100, desc="measuring", unit="%", file=sys.stderr, disable=None) as bar:
            found = estimate_profile(list(pictures.values()), progress=lambda f: bar.update(round(f * 100) - bar.n))
        for p, k in zip(pictures, found.carries):
            if found.found and not k:
                say(f"{p}: doesn't seem to carry the watermark (set aside)")
        if not found.found:
            say(f"{found.summary()}; no profile written")
            return EXIT_NOT_FOUND
        if found.problem and not args.force:
            say(f"{found.summary()}")
            say("no profile written: it would likely make the pictures worse. Restore them blind (without "
                "--profile), measure from other pictures, or write it anyway with --force")
            return EXIT_NOT_FOUND
        try:
            save_profile(found.profile, args.output)
            if args.preview:
                imageio.save_picture(imageio.Picture(preview(found.profile), bit_depth=8, format="PNG"),
                                     preview_path(args.output))
        except OSError as e:
            raise KireiError(f"can't write the profile {args.output}: {e.strerror or e}") from None
    print(f"profile written to {args.output} ({size[0]}x{size[1]}): {found.summary()}")
    if args.preview:
        print(f"preview written to {preview_path(args.output)}")
    return 0


def preview_path(profile_path):
    """Where --preview writes: beside the profile, P.png -> P.preview.png."""
    root, _ = os.path.splitext(profile_path)
    return root + ".preview.png"


def cmd_models(args):
    from .weights_io import installed
    models = installed()
    if not models:
        raise KireiError("no model is installed (core/weights is empty or damaged): reinstall Kirei, "
                         "or restore with --method classic")
    for name, rec in models.items():
        scores = rec.get("scores", {})
        figures = ", ".join(f"{case} {scores[case]:.2f}" for case in ("clean", "profile", "estimate", "jpeg")
                            if isinstance(scores.get(case), (int, float)))
        print(f"{name}{' (default)' if name == DEFAULT_MODEL else ''}: {rec.get('parameters', 0) / 1e6:.1f}M parameters, "
              f"{rec.get('speed', 'speed not measured')}; PSNR-Y x2 {figures or 'not scored yet'}")
    return 0


def cmd_serve(args):
    from .server import serve  # aiohttp is only needed here
    return serve(host=args.host, port=args.port, token_file=args.token_file, idle_exit=args.idle_exit,
                 device=args.device, max_pixels=args.max_pixels, max_body_mb=args.max_body_mb)


def cmd_train(args):
    from .train import main as train
    return train(args)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return {"restore": cmd_restore, "estimate": cmd_estimate, "serve": cmd_serve,
                "train": cmd_train, "models": cmd_models}[args.command](args)
    except KireiError as e:
        say(f"error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted")
        return 130
