"""The quality pages in a real browser: the charts render, the threshold explorer responds, the filters reload."""

import numpy as np
import pytest

from tests.quality.conftest import month

pytestmark = pytest.mark.browser


def test_quality_pages_render_and_threshold_explorer_responds(seed, manager, page, login):
    reader, senior = seed.user("reader"), seed.user("senior")
    model = seed.ai_model("Screener", "2.1")
    rng = np.random.default_rng(1)
    for i in range(40):
        image = seed.image()
        a = int(rng.integers(0, 5))
        b = min(4, a + int(rng.integers(0, 2)))
        first = seed.grade(image, "primary", str(a), grader=reader, when=month(2026, 1 + i % 5))
        second = seed.grade(image, "secondary", str(b), grader=senior, when=month(2026, 1 + i % 5, 20))
        probability = float(np.clip(rng.normal(0.25 + 0.15 * b, 0.15), 0, 1))
        seed.grade(image, "ai", str(b if rng.random() < 0.8 else a), ai_model=model, probability=probability)
        seed.consensus(image, str(b), grades=[first, second])
    login(manager)

    page.goto("/quality/agreement")
    assert page.locator('[data-testid="pairs"] tbody tr').count() == 1
    heatmap = page.locator('[data-testid="heatmap"] svg')
    assert heatmap.is_visible() and heatmap.bounding_box()["width"] > 150
    assert page.locator('[data-testid="timeline"] svg').is_visible()

    page.goto("/quality/performance?rater=ai:Screener:2.1")
    roc = page.locator('[data-testid="roc"] svg[data-chart="roc"]')
    assert roc.is_visible() and roc.bounding_box()["height"] > 150
    assert page.locator("svg .roc-operating-point").count() == 1
    marker = page.locator("svg .roc-threshold-marker")
    assert marker.get_attribute("visibility") == "visible"  # the explorer placed it at the start value
    sensitivity = page.locator("#te-sensitivity")
    before = (sensitivity.inner_text(), marker.get_attribute("cx"), page.locator("#te-tpfp").inner_text())
    assert before[0].endswith("%")
    page.locator("#threshold-slider").fill("90")
    assert page.locator("#threshold-value").inner_text() == "0.90"
    after = (sensitivity.inner_text(), marker.get_attribute("cx"), page.locator("#te-tpfp").inner_text())
    assert after != before
    page.locator("#threshold-slider").fill("0")
    assert page.locator("#threshold-value").inner_text() == "0.00"
    assert sensitivity.inner_text() == "100.0%"  # everything positive at threshold 0

    page.goto("/quality/monitoring")
    assert page.locator('[data-testid="graders"] tbody tr').count() == 2
    assert page.locator('[data-testid="forest"] svg').is_visible()
