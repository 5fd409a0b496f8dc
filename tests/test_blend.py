import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.blend import invert, stamp

unit = st.floats(0.0, 1.0, width=32)


@settings(max_examples=200, deadline=None)
@given(image=arrays(np.float32, (6, 5, 3), elements=unit), color=arrays(np.float32, (6, 5, 3), elements=unit),
       alpha=arrays(np.float32, (6, 5), elements=st.floats(0.0, 0.875, width=32)))
def test_invert_undoes_stamp_where_light_passes(image, color, alpha):
    back = invert(stamp(image, alpha, color), alpha, color)
    np.testing.assert_allclose(back, image, atol=1e-4)


def test_stamp_is_the_blend_formula():
    image = np.full((1, 1, 3), 0.2, np.float32)
    color = np.full((1, 1, 3), 1.0, np.float32)
    out = stamp(image, np.array([[0.25]], np.float32), color)
    np.testing.assert_allclose(out, 0.25 * 1.0 + 0.75 * 0.2)


def test_invert_of_8bit_stamp_stays_within_amplified_quantisation(stamped_set, watermark):
    alpha, color = watermark
    stamped, clean = stamped_set
    back = invert(stamped[0], alpha, color)
    bound = 0.5 / 255 / (1 - alpha.max()) + 1e-5
    assert np.abs(back - clean[0]).max() <= bound
