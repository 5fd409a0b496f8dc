"""Training picture sources beyond painted pictures (core/scenes.py, PairMaker's sources): SVG
renders with resvg-py, sprites composed over backgrounds, the shares of the sources."""
import os
import sys

import numpy as np
import pytest

from core import degrade, scenes
from core.degrade import PairMaker, source_shares
from core.errors import KireiError
from core.synth import anime_picture
from tests.conftest import ROOT, run_cli

SHARED_SVG = os.path.join(ROOT, "..", "shared", "data", "train_svg")
needs_resvg = pytest.mark.skipif(not __import__("importlib.util").util.find_spec("resvg_py"),
                                 reason="resvg-py is not installed (the train and test extras carry it)")

# a drawing with an outline on a transparent canvas, and one with an opaque background
FIGURE_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72"><circle cx="36" cy="36" r="24" '
              'fill="#f4a" stroke="#000" stroke-width="2"/><rect x="26" y="30" width="20" height="6" fill="#2a6"/></svg>')
TILE_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72"><rect width="72" height="72" fill="#8cf"/>'
            '<path d="M10 60 L36 10 L62 60 Z" fill="#fd4" stroke="#222" stroke-width="3"/></svg>')


@pytest.fixture
def svg_folder(tmp_path):
    d = tmp_path / "svg" / "set"
    d.mkdir(parents=True)
    (d / "figure.svg").write_text(FIGURE_SVG)
    (d / "tile.svg").write_text(TILE_SVG)
    (tmp_path / "svg" / "LICENSES").mkdir()
    (tmp_path / "svg" / "LICENSES" / "not-a-drawing.svg").write_text("<svg/>")
    return str(tmp_path / "svg")


def anime_sprites(n=2):
    """RGBA pictures with transparency around a figure, as train_anime's are."""
    out = []
    for seed in range(n):
        rgb = np.asarray(anime_picture(300, 260, seed=seed))
        y, x = np.mgrid[:260, :300]
        alpha = np.where((y - 130) ** 2 + (x - 150) ** 2 < 100 ** 2, 255, 0).astype(np.uint8)
        out.append(np.dstack([rgb, alpha]))
    return out


# ---------------------------------------------------------------- rendering
@needs_resvg
def test_a_shared_svg_renders_at_the_requested_size_and_is_not_blank():
    if not os.path.isdir(SHARED_SVG):
        pytest.skip(f"{SHARED_SVG} is not here")
    files = scenes.svg_files(SHARED_SVG)
    assert len(files) > 100 and all(f.endswith(".svg") and "LICENSES" not in f for f in files)
    for path in (files[0], files[len(files) // 2], files[-1]):  # a DiceBear avatar, a Fluent and a Twemoji emoji
        for side in (128, 331):
            rgba = scenes.render_svg(path, side)
            assert rgba.shape == (side, side, 4) and rgba.dtype == np.uint8
            rgb = scenes.on_white(rgba)
            assert rgb.shape == (side, side, 3)
            assert (rgb < 250).any(axis=2).mean() > 0.05, path  # some drawing, not a white page
            assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 3, path


@needs_resvg
def test_render_keeps_transparency_and_draws_where_the_svg_says(svg_folder):
    files = scenes.svg_files(svg_folder)
    assert [os.path.basename(f) for f in files] == ["figure.svg", "tile.svg"]  # LICENSES left out
    fig = scenes.render_svg(files[0], 144)  # 2 px per SVG unit
    assert fig[0, 0, 3] == 0 and fig[72, 72, 3] == 255  # a corner is empty, the middle is drawn
    assert tuple(fig[72, 40, :3]) == (0xff, 0x44, 0xaa)  # the circle's fill
    assert tuple(fig[66, 72, :3]) == (0x22, 0xaa, 0x66)  # the rectangle over it
    tile = scenes.render_svg(files[1], 144)
    assert (tile[..., 3] == 255).all()
    assert len(scenes.Sprite.of(fig).edges) > 20 and len(scenes.Sprite.of(tile).edges) == 0


@needs_resvg
def test_a_broken_svg_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.svg"
    bad.write_text("<svg><circle")
    with pytest.raises(KireiError, match="can't render .*bad.svg"):
        scenes.render_svg(str(bad), 64)


def test_without_resvg_the_error_says_how_to_install_it(monkeypatch, svg_folder):
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # import fails as if not installed
    with pytest.raises(KireiError, match=r"resvg-py .*ensure_core_env\(extras=\('train',\)\)"):
        scenes.render_svg(scenes.svg_files(svg_folder)[0], 64)
    with pytest.raises(KireiError, match="resvg-py"):
        PairMaker([], np.random.default_rng(0), synth_pool=1, stamp_pool=1, svg_files=scenes.svg_files(svg_folder))


def test_svg_folder_errors(tmp_path):
    with pytest.raises(KireiError, match="does not exist"):
        scenes.svg_files(str(tmp_path / "nope"))
    with pytest.raises(KireiError, match="no .svg files"):
        scenes.svg_files(str(tmp_path))


# ---------------------------------------------------------------- composing
def test_a_sprite_goes_where_it_is_put():
    rng = np.random.default_rng(1)
    background = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    sprite = np.zeros((10, 12, 4), np.uint8)
    sprite[..., :3] = (200, 30, 60)
    sprite[2:8, 3:9, 3] = 255  # an opaque block in a transparent frame
    sprite[0, 0, 3] = 128  # and one half-transparent pixel
    for y, x in ((5, 7), (-3, 44), (35, -4)):
        out = scenes.over(background, sprite, y, x)
        assert out.shape == background.shape and out is not background
        painted = np.zeros((40, 50), bool)
        ys, xs = np.nonzero(sprite[..., 3] == 255)
        for sy, sx in zip(ys + y, xs + x):
            if 0 <= sy < 40 and 0 <= sx < 50:
                assert tuple(out[sy, sx]) == (200, 30, 60)
                painted[sy, sx] = True
        if 0 <= y < 40 and 0 <= x < 50:
            expect = np.round((np.array([200, 30, 60]) * 128 + background[y, x] * 127.0) / 255)
            assert np.abs(out[y, x].astype(int) - expect).max() <= 1
            painted[y, x] = True
        assert painted.any()
        np.testing.assert_array_equal(out[~painted], background[~painted])  # the rest is untouched
    np.testing.assert_array_equal(scenes.over(background, sprite, 100, 100), background)  # off the picture


def test_a_scene_crop_shows_the_sprite_edge_over_the_background():
    rng = np.random.default_rng(2)
    background = np.full((64, 64, 3), (10, 200, 10), np.uint8)
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 20:80] = (250, 0, 0, 255)  # a red square on a transparent canvas
    sprite = scenes.Sprite.of(rgba)
    assert len(sprite.edges) > 0
    ey, ex = sprite.edges.T
    assert ((ey == 20) | (ey == 79) | (ex == 20) | (ex == 79)).all()  # the square's outline only
    for scale in (1.0, 0.5, 0.8):
        out = scenes.scene_crop(background, sprite, scale, rng)
        assert out.shape == (64, 64, 3)
        red = (out[..., 0] > 240) & (out[..., 1] < 15)
        green = (out[..., 1] > 190) & (out[..., 0] < 20)
        assert red.any() and green.any() and (red | green).mean() > 0.8  # both, with a thin blend between


# ---------------------------------------------------------------- PairMaker with the new sources
def test_source_shares():
    assert source_shares({"pictures"}) == pytest.approx({"synth": 0.3, "pictures": 0.7})
    assert source_shares(set()) == {"synth": 1.0}
    every = source_shares({"pictures", "anime", "svg", "scene"})
    assert every == pytest.approx(degrade.SOURCE_SHARES) and sum(every.values()) == pytest.approx(1)
    fixed = source_shares({"pictures", "svg"}, synth_share=0.25)
    assert fixed["synth"] == pytest.approx(0.25) and fixed["pictures"] / fixed["svg"] == pytest.approx(0.35 / 0.2)
    assert source_shares({"svg", "scene"}, shares={"svg": 1, "synth": 0}) == {"svg": 1.0}


def maker(seed, svg_folder, **kw):
    pictures = [np.asarray(anime_picture(200, 180, seed=10 + i)) for i in range(2)]
    return PairMaker(pictures, np.random.default_rng(seed), scale=2, patch=24, synth_pool=2, stamp_pool=4,
                     anime=anime_sprites(), svg_files=scenes.svg_files(svg_folder), svg_pool=4, **kw)


@needs_resvg
def test_pair_maker_with_every_source_gives_seeded_batches_of_the_right_shapes(svg_folder):
    a, b = maker(5, svg_folder), maker(5, svg_folder)
    assert set(a.shares) == {"synth", "pictures", "anime", "svg", "scene"}
    for _ in range(2):
        ba, bb = a.batch(12), b.batch(12)
        assert ba["stamped"].shape == (12, 3, 24, 24) and ba["truth"].shape == (12, 3, 48, 48)
        assert ba["alpha"].shape == (12, 1, 24, 24) and ba["clean"].shape == (12, 3, 24, 24)
        assert ba["stamped"].dtype == np.float32 and 0 <= ba["truth"].min() and ba["truth"].max() <= 1
        for k in ba:
            np.testing.assert_array_equal(ba[k], bb[k], err_msg=k)
        a.refresh()
        b.refresh()
    other = maker(6, svg_folder).batch(12)
    assert not np.array_equal(other["truth"], ba["truth"])


@needs_resvg
@pytest.mark.parametrize("source", ["svg", "scene", "anime"])
def test_each_new_source_alone_gives_pictures_with_drawing(svg_folder, source):
    m = maker(7, svg_folder, shares={source: 1.0})
    assert m.shares == {source: 1.0}
    for _ in range(10):
        s = m.sample(mode="none", jpeg=False)
        assert s.truth.shape == (48, 48, 3)
        assert s.truth.std() > 0.01  # not a flat page
        np.testing.assert_allclose(s.stamped, s.clean, atol=0.5 / 255)  # mode none: nothing stamped


def test_pictures_only_maker_has_no_new_sources():
    m = PairMaker([np.zeros((64, 64, 3), np.uint8)], np.random.default_rng(0), patch=16, synth_pool=1,
                  stamp_pool=2, synth_share=0.25)
    assert m.svg is None and m.shares == pytest.approx({"synth": 0.25, "pictures": 0.75})


# ---------------------------------------------------------------- provenance and the command line
def test_provenance_counts_licences_from_the_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "MANIFEST.csv").write_text("set,file,license\nx,a/1.svg,MIT\nx,a/2.svg,MIT\ny,3.png,CC0-1.0\n")
    paths = [str(tmp_path / p) for p in ("a/1.svg", "a/2.svg", "3.png", "4.png")]
    got = degrade.provenance(str(tmp_path), paths)
    assert got == {"licences": {"MIT": 2, "CC0-1.0": 1, "unknown": 1}, "sets": {"x": 2, "y": 1, "unknown": 1}}


def test_train_with_a_missing_svg_folder_is_a_clear_error(tmp_path):
    p = run_cli("train", "--out", str(tmp_path / "r"), "--svg", str(tmp_path / "nope"), "--steps", "1")
    assert p.returncode == 2
    assert "kirei: error: SVG folder" in p.stderr and "does not exist" in p.stderr
