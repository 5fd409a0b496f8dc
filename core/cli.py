"""The command line: `python -m core restore ...`, `estimate ...`, `profiles ...`, `serve`, `train`, `models`.

The contract is in ../shared/DESIGN.md. Errors are one line, `kirei: error: ...`, with a
non-zero exit; nothing is half-written (outputs are written atomically). In a batch, a bad
input fails alone and the others are still restored (exit 1 then).

Arguments are checked before anything heavy loads: this module and what it imports at the top
are light (no torch, numpy or scipy), the engine is imported inside the commands, and only the
command being run gets its arguments (serve's defaults come from the worker's protocol module, which loads numpy).
"""
import argparse
import os
import sys
import tempfile
import textwrap
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime

from tqdm import tqdm

from . import __version__, client
from .allocator import keep_freed_memory
from .defaults import DEFAULT_TILE, DEVICES, GOOD_ESTIMATE, METHODS, MIN_PICTURES, MIN_TILE, SCALES, TTA_CPU_MAX_PIXELS
from .errors import KireiError
from .models import DEFAULT_MODEL

EXIT_FAILED_INPUTS = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3  # estimate: no watermark, or none that can be trusted; nothing written
# blind removal: a batch with at least this many pictures of one size is
# assumed to share its watermark, which is then measured from the batch itself
BLIND_BATCH_MIN = 3
BLIND_BATCH_MAX = 40


def say(message):
    print(f"kirei: {message}", file=sys.stderr)


def _says_default(action):
    """Whether an option's default is worth saying in its help (not None, off, or hidden)."""
    d = action.default
    return bool(action.option_strings) and d is not None and d is not False and d is not argparse.SUPPRESS


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help, where it is worth saying and the help doesn't say it.
    Descriptions are wrapped by _Parser (paragraphs kept)."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text + " (default: %(default)s)" if _says_default(action) and "default" not in text else text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, describe=None, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)
        self._describe = describe  # a description made only when help is printed (it may import the engine)
        self.description = self.description and _paragraphs(self.description)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if action.help is None and _says_default(action):  # an option without help still shows its default
            action.help = "default: %(default)s"
        return action

    def format_help(self):
        if self._describe is not None:
            self.description = _paragraphs(self._describe())
        return super().format_help()

    def error(self, message):  # one line, not argparse's usage block
        command = " ".join(self.prog.split()[3:])
        say(f"error: {message} (see `python -m core{' ' + command if command else ''} --help`)")
        sys.exit(EXIT_USAGE)


def _paragraphs(text):
    """Text wrapped to a terminal's width, its paragraphs (blank-line separated) kept."""
    return "\n\n".join(textwrap.fill(" ".join(t.split()), 78) for t in text.split("\n\n"))


def _at_least(low, what):
    def number(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be at least {low}, not {value}")
        return value
    return number


def _device(text):
    name = text.lower()
    if name not in DEVICES:
        raise argparse.ArgumentTypeError(f"unknown device '{text}': choose one of {', '.join(DEVICES)}")
    return name


def _profile_name(text):
    problem = client.profile_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _restore_arguments(r):
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="pictures, or folders of pictures")
    r.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="the folder to write into (made if missing); an input is never overwritten")
    r.add_argument("--scale", type=int, choices=SCALES, default=2, help="how many times larger")
    wm = r.add_mutually_exclusive_group()
    wm.add_argument("--profile", metavar="NAME|P.png",
                    help="the watermark's profile: the name of a stored one (`python -m core profiles list`) or "
                         "a profile PNG written by `estimate` (a file of that name wins). Without it the watermark "
                         "is removed blind (see above)")
    wm.add_argument("--no-dewatermark", action="store_true", help="upscale only: leave any watermark in place")
    r.add_argument("--method", choices=METHODS, default=None,
                   help="learned: the model (the default when its weights are installed); classic: exact "
                        "inversion of a profile and Lanczos upscaling")
    r.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                   help=f"the learned model: {DEFAULT_MODEL} (best), kirei-fast (for slow machines), "
                        "or a .safetensors file; `python -m core models` lists them")
    r.add_argument("--jpeg", choices=AUTO_YES_NO, default="auto",
                   help="whether the inputs went through JPEG (the model then cleans its blocks and ringing "
                        "too); auto: a JPEG file, or JPEG's traces in the pixels of another")
    r.add_argument("--tta", choices=AUTO_YES_NO, default="auto",
                   help="run the model on each tile's 8 flips and turns and average them: 0.2-0.5 dB better, 8x "
                        "the model's time; auto: for JPEG input, on a GPU or up to "
                        f"{TTA_CPU_MAX_PIXELS:,} pixels")
    r.add_argument("--device", type=_device, default="auto", help=f"one of {', '.join(DEVICES)}; auto: a GPU "
                   "if there is one")
    r.add_argument("--tile", type=_at_least(MIN_TILE, "--tile"), default=DEFAULT_TILE, metavar="N",
                   help="tile side in input pixels: bounds the memory a large picture takes")


def _estimate_arguments(e):
    e.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="pictures (or folders of them) of one size that carry the same watermark")
    e.add_argument("-o", "--output", metavar="P.png", help="write the profile to this file")
    e.add_argument("--save", type=_profile_name, metavar="NAME",
                   help="store the profile by name in Kirei's config folder, for `restore --profile NAME` and the "
                        "GIMP and Krita plugins")
    e.add_argument("--replace", action="store_true",
                   help="with --save: replace a stored profile of that name (without it, a name in use is refused)")
    e.add_argument("--preview", action="store_true",
                   help="with -o: also write the profile over a grey checkerboard beside it, as P.preview.png")
    e.add_argument("--force", action="store_true",
                   help="write the profile even when the checks find it implausible (without it: refuse, exit 3)")


def _describe_estimate():
    return (
        "Measures the watermark that several pictures share and writes it as a profile: an RGBA PNG the "
        "size of the pictures (RGB = the watermark's colour, A = its opacity), to a file (-o), by name "
        "(--save), or both.\n\n"
        f"It needs at least {MIN_PICTURES} pictures of the same size carrying the same watermark; in practice "
        f"{GOOD_ESTIMATE} or more measure it well (the more pictures, the less of their own content is taken "
        "for the stamp). Pictures of another size than most are left out.")


def _profiles_arguments(p):
    act = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    act.add_parser("list", help="the stored profiles: name, size, stamp, date",
                   description="The stored profiles: name, size, where the stamp is and its mean opacity "
                               "(when recorded), and when each was made.")
    show = act.add_parser("show", help="one stored profile in detail", description="Where a stored profile is, "
                          "its size, and how it was made (when recorded).")
    show.add_argument("name", type=_profile_name, metavar="NAME")
    rm = act.add_parser("remove", help="delete a stored profile", description="Deletes a stored profile.")
    rm.add_argument("name", type=_profile_name, metavar="NAME")


def _serve_arguments(v):
    from .protocol import DEFAULT_MAX_BODY_MB, DEFAULT_MAX_PIXELS  # loads numpy and scipy, not torch
    v.add_argument("--host", default="127.0.0.1", help="address to listen on; 127.0.0.1: this machine only")
    v.add_argument("--port", type=int, default=0, help="port; 0: any free one")
    v.add_argument("--token-file", metavar="F",
                   help="file holding the bearer token (made, mode 0600, if missing; default: the config folder's)")
    v.add_argument("--idle-exit", type=float, default=0, metavar="SECONDS",
                   help="exit after this long without requests or jobs; 0: never")
    v.add_argument("--device", type=_device, default="auto", help=f"one of {', '.join(DEVICES)}")
    v.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="the largest region (and profile) a job may send, in pixels")
    v.add_argument("--max-body-mb", type=int, default=DEFAULT_MAX_BODY_MB, metavar="MIB",
                   help="the largest request, in MiB")


def _train_arguments(t):
    from .train_options import add_arguments
    add_arguments(t)


def _train_finder_arguments(t):
    from .train_options import add_finder_arguments
    add_finder_arguments(t)


# name: (arguments, one-line help, what --help says about it)
COMMANDS = {
    "restore": (_restore_arguments, "remove the watermark and upscale pictures", (
        "Writes OUTDIR/<name>.png for every input: same mode, size x scale.\n\n"
        "With --profile, the watermark it describes is removed. Without, it is removed blind: pictures of one "
        f"size, {BLIND_BATCH_MIN} or more of them, are taken to share their watermark, which is measured from "
        f"them (up to {BLIND_BATCH_MAX}) and removed from each, as a profile would be; in a picture with no "
        "such company, or whose batch shows no watermark that can be trusted, the learned model's stamp finder "
        "looks for one, and only what removal clearly makes more natural is removed: else the picture is "
        "upscaled as it is, and each picture's line says which (the classic method only upscales it).")),
    "estimate": (_estimate_arguments, "measure the watermark shared by several pictures", _describe_estimate),
    "profiles": (_profiles_arguments, "list, show or remove stored profiles (estimate --save NAME)",
                 "The profiles stored by name (`estimate --save NAME`), kept in Kirei's config folder; "
                 "`restore --profile NAME` and the GIMP and Krita plugins use them."),
    "models": (None, "list the installed models: size, speed and scores",
               "The models in core/weights, with what their records say."),
    "serve": (_serve_arguments, "run the worker that GIMP and Krita talk to (HTTP, see docs/protocol.md)",
              "Prints the URL it listens on as its first line of output."),
    "train": (_train_arguments, "train the model (see core/train.py), or export a run's weights",
              "Resumes from OUT/checkpoint.pt when there is one."),
    "train-finder": (_train_finder_arguments, "train the stamp finder that blind removal of one picture uses",
                     "See core/train_finder.py. Resumes from OUT/checkpoint.pt when there is one."),
}


def build_parser(commands=None):
    """The parser; only the commands named (all when None) get their arguments, so that parsing one
    command imports only what its own defaults need."""
    p = _Parser(prog="python -m core", description="Kirei: remove a stamped watermark and upscale anime pictures.")
    p.add_argument("--version", action="version", version=f"kirei {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, (arguments, line, about) in COMMANDS.items():
        describe = about if callable(about) else None
        c = sub.add_parser(name, help=line, description=None if describe else about, describe=describe)
        if arguments is not None and (commands is None or name in commands):
            arguments(c)
    return p


# --jpeg (whether the inputs went through JPEG) and --tta: None lets the engine look or decide
AUTO_YES_NO = {"auto": None, "yes": True, "no": False}
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
    from . import imageio
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
    both methods use it; the learned method searches the rest one by one (core/blind.py).
    """
    from . import imageio
    from .estimate import estimate_profile
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
            rest = "" if method == "classic" else "; each picture is searched on its own"
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


def _stored_list():
    names = client.profile_names()
    return (f"stored profiles: {', '.join(names)}" if names else
            "no profile is stored yet: `python -m core estimate --save NAME PICTURES` stores one")


def find_profile(value):
    """--profile's file: the file `value` names when there is one, else the stored profile of that
    name. -> (path, how messages name it). A KireiError listing the stored names when neither exists."""
    path = client.stored_or_file(value)
    if path is None:
        raise KireiError(f"--profile {value}: no such file, nor a stored profile of that name ({_stored_list()})")
    return path, (None if path == value else f"the stored profile '{value}'")


def cmd_restore(args):
    from .devices import resolve_device
    from .profile import PROFILE_NAME, load_profile
    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise KireiError("no pictures to restore")
    resolve_device(args.device)
    profile = None
    if args.profile:
        path, called = find_profile(args.profile)
        profile = load_profile(path)
        args.profile, args.profile_called = path, called or PROFILE_NAME
    method = choose_method(args.method, args.model)
    plan, refused = plan_outputs(inputs, args.output, args.profile)
    for message in refused:
        say(f"error: {message}")
    with output_folder(args.output):
        failed, written = _restore_all(plan, profile, method, args)
    print(f"{len(written)} picture(s) written to {args.output}" +
          (f", {len(failed) + len(refused)} failed" if failed or refused else ""))
    return EXIT_FAILED_INPUTS if failed or refused else 0


def _tile_bar(path):
    """A bar for the tiles of one picture (a large one takes minutes), gone when it is done."""
    return tqdm(total=100, desc=os.path.basename(path), unit="%", leave=False, file=sys.stderr, disable=None,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")


def _progress_to(bar):
    """progress(fraction) that moves a 0..100 bar."""
    def progress(fraction):
        bar.update(round(fraction * 100) - bar.n)
    return progress


def _restore_all(plan, profile, method, args):
    """Restore each input to its planned output; a bad input fails alone. -> (failed, written)."""
    from . import imageio
    from .jpeg_traces import went_through_jpeg
    from .pipeline import Options, check_profile_size, restore_picture
    blind_mode = not args.profile and not args.no_dewatermark
    blind = _blind_profiles(list(plan), method) if blind_mode else {}
    options = Options(scale=args.scale, method=method, device=args.device, tile=args.tile, blind=blind_mode,
                      model=args.model, tta=AUTO_YES_NO[args.tta])
    failed, written = [], []
    for path, out in tqdm(plan.items(), desc="restoring", unit="picture", file=sys.stderr, disable=None):
        try:
            picture = imageio.load_picture(path)
            use = profile if profile is not None else blind.get(picture.size)
            if profile is not None:
                check_profile_size(profile.size, *picture.size, name=path, profile_name=args.profile_called)
            said = AUTO_YES_NO[args.jpeg]
            if said is None and picture.format == "JPEG":
                said = True
            jpeg = method == "learned" and went_through_jpeg(picture.pixels, said)
            with _tile_bar(path) as bar:
                result = restore_picture(picture, use, replace(options, jpeg=jpeg), progress=_progress_to(bar),
                                         report=lambda found: tqdm.write(f"kirei: {path}: blind: {found.summary()}",
                                                                         file=sys.stderr))
            imageio.save_picture(result, out)
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
    from . import imageio
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


def _check_estimate_targets(args):
    """Refuse, before any measuring, what estimate could not write: no target at all, -o a folder
    or an input, --save a name in use (without --replace)."""
    if not args.output and not args.save:
        raise KireiError("say where the profile goes: -o P.png (a file), --save NAME (stored by name), or both")
    if args.preview and not args.output:
        raise KireiError("--preview writes beside the -o file: give -o P.png too")
    if args.output:
        if os.path.isdir(args.output):
            raise KireiError(f"-o {args.output} is a folder: name the profile file to write, e.g. "
                             f"{os.path.join(args.output, 'profile.png')}")
        victim = _overwritten_input(args.output, _owners(args.inputs))
        if victim is not None:
            raise KireiError(f"the profile {args.output} would overwrite the input {victim}")
    if args.save and not args.replace and os.path.exists(client.profile_path(args.save)):
        made = client.profile_record(args.save).get("made", "")
        raise KireiError(f"a profile called '{args.save}' is already stored{' (made ' + made[:10] + ')' if made else ''}"
                         ": add --replace to replace it, or choose another name")


def cmd_estimate(args):
    args.inputs = expand_inputs(args.inputs)
    _check_estimate_targets(args)
    from . import imageio
    from .estimate import estimate_profile, preview
    from .profile import profile_png, save_profile
    if len(args.inputs) < MIN_PICTURES:
        raise KireiError(f"estimate needs at least {MIN_PICTURES} pictures that carry the same watermark, "
                         f"got {len(args.inputs)}")
    folder = output_folder(os.path.dirname(os.path.abspath(args.output))) if args.output else nullcontext()
    with folder:
        pictures, size = _read_same_size(args.inputs)
        with tqdm(total=100, desc="measuring", unit="%", file=sys.stderr, disable=None) as bar:
            found = estimate_profile(list(pictures.values()), progress=_progress_to(bar))
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
        if args.output:
            try:
                save_profile(found.profile, args.output)
                if args.preview:
                    imageio.save_picture(imageio.Picture(preview(found.profile), bit_depth=8, format="PNG"),
                                         preview_path(args.output))
            except OSError as e:
                raise KireiError(f"can't write the profile {args.output}: {e.strerror or e}") from None
    if args.output:
        print(f"profile written to {args.output} ({size[0]}x{size[1]}): {found.summary()}")
        if args.preview:
            print(f"preview written to {preview_path(args.output)}")
    if args.save:
        replaced = os.path.exists(client.profile_path(args.save))
        try:
            path = client.store_profile(args.save, profile_png(found.profile), _record(found, size, len(pictures)))
        except OSError as e:
            raise KireiError(f"can't store the profile in {client.profiles_dir()}: {e.strerror or e}") from None
        print(f"profile {'replaced' if replaced else 'stored'} as '{args.save}' ({size[0]}x{size[1]}, {path})"
              + ("" if args.output else f": {found.summary()}"))
        print(f"restore with: python -m core restore --profile {args.save} -o OUTDIR PICTURES")
    return 0


def _record(found, size, inputs):
    """What a stored profile's record keeps of how it was made (see client's named profiles)."""
    return {"made": datetime.now().astimezone().isoformat(timespec="seconds"), "size": list(size),
            "by": f"python -m core estimate (kirei {__version__})", "report": found.summary(),
            "pictures": int(found.carries.sum()), "inputs": inputs, "bbox": list(found.bbox) if found.bbox else None,
            "mean_opacity": round(found.mean_opacity, 4)}


def preview_path(profile_path):
    """Where --preview writes: beside the profile, P.png -> P.preview.png."""
    root, _ = os.path.splitext(profile_path)
    return root + ".preview.png"


def _stored(name):
    """A stored profile's path; a KireiError listing the stored names when there is none."""
    path = client.profile_path(name)
    if not os.path.isfile(path):
        raise KireiError(f"there is no stored profile called '{name}' ({_stored_list()})")
    return path


def _when(name, record):
    made = record.get("made")
    if made:
        return made[:16].replace("T", " ")
    return datetime.fromtimestamp(os.path.getmtime(client.profile_path(name))).strftime("%Y-%m-%d %H:%M")


def _stamp_text(record):
    """Where a record says the stamp is ("x 4-120, y 33-160, mean opacity 0.36")."""
    box, opacity = record.get("bbox"), record.get("mean_opacity")
    if "bbox" in record and not box:
        return "none"
    if not box or opacity is None:
        return "not recorded"
    return f"x {box[0]}-{box[2]}, y {box[1]}-{box[3]}, mean opacity {opacity:.2f}"


def _stamp_of(profile):
    """Where a profile's stamp is and its mean opacity, read from the profile itself (for a stored one
    whose record doesn't say: made by hand, or by a plugin)."""
    from .estimate import stamp_extent
    box, opacity = stamp_extent(profile.alpha)
    return {"bbox": list(box) if box else None, "mean_opacity": opacity}


def cmd_profiles(args):
    from . import imageio
    from .profile import load_profile
    if args.action == "list":
        names = client.profile_names()
        if not names:
            print(f"no profile is stored yet ({client.profiles_dir()}): "
                  "`python -m core estimate --save NAME PICTURES` stores one")
            return 0
        rows = []
        for name in names:
            rec = client.profile_record(name)
            try:
                w, h = imageio.read_size(client.profile_path(name))
                size = f"{w}x{h}"
            except KireiError:
                size = "unreadable"
            known = "bbox" in rec or size == "unreadable"
            stamp = rec if known else _stamp_of(load_profile(client.profile_path(name)))
            rows.append((name, size, "stamp " + _stamp_text(stamp), _when(name, rec)))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(col.ljust(wd) for col, wd in zip(row, widths + [0])).rstrip())
        return 0
    path = _stored(args.name)
    if args.action == "remove":
        client.remove_profile(args.name)
        print(f"removed the profile '{args.name}' ({path})")
        return 0
    rec = client.profile_record(args.name)
    profile = load_profile(path)
    lines = [("path", path), ("size", "%dx%d" % profile.size), ("made", _when(args.name, rec))]
    if rec.get("by"):
        lines.append(("by", rec["by"]))
    if rec.get("pictures"):
        lines.append(("from", f"{rec['pictures']} pictures that carry the stamp, of {rec.get('inputs', '?')} read"))
    if rec.get("report"):
        lines.append(("found", rec["report"]))
    lines.append(("stamp", _stamp_text(rec if "bbox" in rec else _stamp_of(profile))))
    lines.append(("use", f"python -m core restore --profile {args.name} -o OUTDIR PICTURES"))
    for key, value in lines:
        print(f"{key + ':':9}{value}")
    return 0


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


def cmd_train_finder(args):
    from .train_finder import main as train
    return train(args)


def main(argv=None):
    keep_freed_memory()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    # the command is the first word that isn't an option (the top level has no option taking a value)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser({command}).parse_args(argv)
    try:
        return {"restore": cmd_restore, "estimate": cmd_estimate, "profiles": cmd_profiles, "serve": cmd_serve,
                "train": cmd_train, "train-finder": cmd_train_finder, "models": cmd_models}[args.command](args)
    except (KireiError, client.KireiClientError) as e:
        say(f"error: {e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted")
        return 130
