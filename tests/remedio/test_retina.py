"""Burnt-in text detection and masking, and the laterality suggestion, on synthetic fundus photographs."""

import io

import numpy as np
import pytest
from PIL import Image

from remedio import retina
from tests.remedio.export import fundus_image, fundus_jpeg


@pytest.mark.parametrize("size", [(640, 640), (2866, 2866), (1200, 900)])
@pytest.mark.parametrize("side", ["right", "left"])
def test_laterality_follows_the_optic_disc(size, side):
    analysis = retina.analyse(fundus_jpeg(size=size, disc_side=side, seed=4))
    assert (analysis.width, analysis.height) == size
    assert analysis.laterality == side
    assert analysis.laterality_confidence >= 0.8
    assert analysis.text_boxes == []


def test_no_suggestion_for_a_disc_centred_photograph():
    img = np.asarray(fundus_image(size=(600, 600), seed=2)).copy()
    # Move the bright disc to the centre: no side can be told.
    img[img.max(axis=2) > 220] = (200, 80, 30)
    yy, xx = np.mgrid[0:600, 0:600]
    img[(yy - 300) ** 2 + (xx - 300) ** 2 <= 30**2] = (255, 230, 170)
    out = io.BytesIO()
    Image.fromarray(img).save(out, "JPEG", quality=92)
    analysis = retina.analyse(out.getvalue())
    assert analysis.laterality == "" and analysis.laterality_confidence is None


@pytest.mark.parametrize("corner", ["top-left", "top-right", "bottom-left", "bottom-right"])
@pytest.mark.parametrize("size", [(800, 800), (1224, 1632)])
def test_burnt_in_text_is_found_in_every_corner(corner, size):
    data = fundus_jpeg(size=size, band_text="Asha Verma MRN0042 01-02-2024", band_corner=corner, seed=5)
    analysis = retina.analyse(data)
    assert len(analysis.text_boxes) == 1
    x0, y0, x1, y1 = analysis.text_boxes[0]
    width, height = size
    assert ((x0 + x1) / 2 < width / 2) == corner.endswith("left")
    assert ((y0 + y1) / 2 < height / 2) == corner.startswith("top")
    assert y1 - y0 < height / 8  # a band, not the photograph
    assert analysis.text_confidence >= 0.5


def test_mask_blanks_the_text_and_nothing_else():
    data = fundus_jpeg(size=(900, 900), band_text="Asha Verma MRN0042", seed=6)
    analysis = retina.analyse(data)
    masked = retina.render_masked(data, analysis.text_boxes)
    after = np.asarray(Image.open(io.BytesIO(masked)).convert("L"), dtype=np.int16)
    before = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.int16)
    x0, y0, x1, y1 = analysis.text_boxes[0]
    assert after[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].max() <= 8  # blank (JPEG ringing at the edge aside)
    outside = np.ones_like(after, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.abs(after[outside] - before[outside]).mean() < 2
    assert retina.analyse(masked).text_boxes == []


def test_exif_orientation_is_applied_before_boxes():
    img = fundus_image(size=(600, 400), band_text="ID 42", band_corner="top-left", seed=7)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera held sideways
    out = io.BytesIO()
    img.rotate(90, expand=True).save(out, "JPEG", exif=exif, quality=92)  # stored rotated, displayed upright
    analysis = retina.analyse(out.getvalue())
    assert (analysis.width, analysis.height) == (600, 400)
    assert analysis.text_boxes and analysis.text_boxes[0][0] < 300 and analysis.text_boxes[0][1] < 200


def test_valid_boxes():
    assert retina.valid_boxes([[10, 20, 5, 2], [-5, -5, 2000, 3]], 100, 50) == [[5, 2, 10, 20], [0, 0, 100, 3]]
    with pytest.raises(ValueError):
        retina.valid_boxes([[1, 2, 3]], 100, 100)
    with pytest.raises(ValueError):
        retina.valid_boxes([[200, 200, 300, 300]], 100, 100)
