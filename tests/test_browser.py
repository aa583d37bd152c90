"""End to end in headless Chromium: `koala serve` runs, a person uploads a gray photo on the page,
the colour result appears (the Colorizer's exact pixels), the sliders work, errors show.

Needs Debian's chromium and chromium-driver (``bash scripts/install_browser.sh``, which ``make test``
runs) and selenium; skipped without them.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import HINT_MODEL_SATURATION, colourfulness, decode, encode, photo
from koala.inference import Colorizer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,1000")
READ_IMAGE_JS = """
const [selector, done] = arguments;
fetch(document.querySelector(selector).src).then(r => r.arrayBuffer()).then(buffer => {
  let text = ""; new Uint8Array(buffer).forEach(b => text += String.fromCharCode(b)); done(btoa(text));
}).catch(e => done("error: " + e));
"""

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="no Chromium: run scripts/install_browser.sh"),
]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def serve(model):
    """`koala serve` of ``model`` on a free loopback port; yields its URL."""
    command = [sys.executable, "-m", "koala.cli", "serve", "--model", str(model), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        line = process.stdout.readline()  # printed once it listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"koala serve said {line!r}"
        yield f"http://127.0.0.1:{match.group(1)}/"
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def served(tiny_model):
    yield from serve(tiny_model)


@pytest.fixture(scope="module")
def served_hints(tiny_hint_model):
    yield from serve(tiny_hint_model)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def image_of(driver, selector: str) -> np.ndarray:
    encoded = driver.execute_async_script(READ_IMAGE_JS, selector)
    assert not encoded.startswith("error"), encoded
    return decode(base64.b64decode(encoded))


def wait_for_new_result(driver, previous: str | None, timeout: float = 60) -> str:
    WebDriverWait(driver, timeout).until(
        lambda d: (src := d.find_element(By.ID, "result-img").get_attribute("src")) and src != previous
        and d.execute_script("return document.getElementById('result-img').naturalWidth") > 0)
    return driver.find_element(By.ID, "result-img").get_attribute("src")


def test_upload_colorize_compare_and_download(served, browser, tiny_model, tmp_path):
    gray = photo((240, 200), gray=True)
    upload = tmp_path / "old_cat.jpg"
    upload.write_bytes(encode(gray, "JPEG"))
    browser.get(served)
    assert "koala" in browser.title
    browser.find_element(By.ID, "file").send_keys(str(upload))
    src = wait_for_new_result(browser, None)

    result, shown_input = image_of(browser, "#result-img"), image_of(browser, "#input-img")
    expected = Colorizer.load(tiny_model).colorize(str(upload))
    assert np.array_equal(result, expected)  # the page shows the Colorizer's pixels
    assert colourfulness(shown_input) < 1.0 and colourfulness(result) > 20
    assert np.abs(result.astype(int) - shown_input).mean() > 10

    link = browser.find_element(By.ID, "download")
    assert link.is_displayed() and link.get_attribute("href") == src
    assert link.get_attribute("download") == "old_cat_color.png"

    browser.execute_script("const r = document.getElementById('compare-range');"
                           "r.value = 30; r.dispatchEvent(new Event('input'));")
    assert browser.execute_script(
        "return document.getElementById('compare').style.getPropertyValue('--pos')") == "30%"

    shot = tmp_path / "koala_page.png"
    browser.save_screenshot(str(shot))
    assert colourfulness(decode(shot.read_bytes())) > 1.0  # colour reached the screen
    print(f"screenshot: {shot}")
    if os.environ.get("KOALA_SCREENSHOT"):
        Path(os.environ["KOALA_SCREENSHOT"]).write_bytes(shot.read_bytes())

    browser.execute_script("const s = document.getElementById('saturation');"
                           "s.value = 0; s.dispatchEvent(new Event('input'));")
    wait_for_new_result(browser, src)
    assert browser.find_element(By.ID, "saturation-value").text == "0.00"
    assert colourfulness(image_of(browser, "#result-img")) < 1.0


def test_a_broken_file_shows_the_servers_reason(served, browser, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("these are notes, not a photo")
    browser.get(served)
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert browser.find_element(By.ID, "error").text == "notes.jpg: not an image (unrecognised format)"
    assert browser.find_element(By.ID, "results").is_displayed() is False


def test_a_failed_upload_clears_the_previous_result(served, browser, tmp_path):
    good, bad = tmp_path / "cat.jpg", tmp_path / "notes.jpg"
    good.write_bytes(encode(photo((120, 100), gray=True), "JPEG"))
    bad.write_text("these are notes, not a photo")
    browser.get(served)
    browser.find_element(By.ID, "file").send_keys(str(good))
    wait_for_new_result(browser, None)
    assert browser.find_element(By.ID, "download").is_displayed()
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert browser.find_element(By.ID, "error").text == "notes.jpg: not an image (unrecognised format)"
    for element in ("results", "compare-section", "download"):
        assert not browser.find_element(By.ID, element).is_displayed(), element
    assert browser.find_element(By.ID, "result-img").get_attribute("src") in (None, "")


def test_place_recolour_and_delete_a_hint(served_hints, browser, tiny_hint_model, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    gray = photo((240, 200), gray=True)
    upload = tmp_path / "old_dress.png"
    upload.write_bytes(encode(gray))
    browser.get(served_hints)
    browser.find_element(By.ID, "file").send_keys(str(upload))
    wait_for_new_result(browser, None)
    colorizer = Colorizer.load(tiny_hint_model)
    automatic = colorizer.colorize(str(upload))
    assert np.array_equal(image_of(browser, "#result-img"), automatic)
    assert shown_saturation(browser) == f"{HINT_MODEL_SATURATION:.2f}"  # the model's tuned saturation, without hints

    browser.execute_script("const c = document.getElementById('hint-color');"
                           "c.value = '#00c040'; c.dispatchEvent(new Event('input'));")
    result = browser.find_element(By.ID, "result-img")
    ActionChains(browser).move_to_element_with_offset(result, -40, -20).click().perform()  # left of the centre
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#hint-layer .hint"))
    hints = wait_for_full_result(browser)
    assert "preview in" in browser.find_element(By.ID, "status").text
    assert len(hints) == 1 and hints[0]["color"] == "#00c040"
    assert shown_saturation(browser) == f"{HINT_MODEL_SATURATION:.2f}"  # with hints too (hinted colours still as given)
    assert 0 <= hints[0]["x"] < 240 and 0 <= hints[0]["y"] < 200
    guided = image_of(browser, "#result-img")
    assert np.array_equal(guided, colorizer.colorize(str(upload), hints=hints))  # full size, the Colorizer's pixels
    x, y = hints[0]["x"], hints[0]["y"]
    near = (slice(max(0, y - 15), y + 15), slice(max(0, x - 15), x + 15))
    assert np.abs(guided[near].astype(int) - automatic[near]).mean() > 5  # the colour changed where the hint is
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hint-layer .hint")) == 1
    assert browser.find_element(By.ID, "download").is_displayed()

    browser.execute_script("const c = document.getElementById('hint-color');"  # recolour the selected hint
                           "c.value = '#2040ff'; c.dispatchEvent(new Event('input'));")
    recoloured = wait_for_full_result(browser)
    assert recoloured == [{**hints[0], "color": "#2040ff"}]
    assert np.array_equal(image_of(browser, "#result-img"), colorizer.colorize(str(upload), hints=recoloured))

    marker = browser.find_element(By.CSS_SELECTOR, "#hint-layer .hint")  # drag it to the right
    ActionChains(browser).click_and_hold(marker).move_by_offset(60, 10).release().perform()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return JSON.parse(document.getElementById('hint-layer').dataset.hints)[0].x") > hints[0]["x"] + 20)
    moved = wait_for_full_result(browser)
    assert np.array_equal(image_of(browser, "#result-img"), colorizer.colorize(str(upload), hints=moved))

    browser.find_element(By.ID, "hint-delete").click()
    assert wait_for_full_result(browser) == []
    assert not browser.find_elements(By.CSS_SELECTOR, "#hint-layer .hint")
    assert np.array_equal(image_of(browser, "#result-img"), automatic)
    assert shown_saturation(browser) == f"{HINT_MODEL_SATURATION:.2f}"
    print("status:", browser.find_element(By.ID, "status").text)


def shown_saturation(driver) -> str:
    return driver.find_element(By.ID, "saturation-value").text


def wait_for_full_result(driver) -> list[dict]:
    """Wait until the page shows the full-size result of its current hints; returns those hints."""
    hints = []

    def shown(d):
        state = d.execute_script("const r = document.getElementById('result-img');"
                                 "return [document.getElementById('hint-layer').dataset.hints, r.dataset.hints || '[]',"
                                 "        r.complete, document.getElementById('status').textContent];")
        hints[:] = json.loads(state[0])
        return json.loads(state[1]) == hints and state[2] and state[3].startswith("Done")

    WebDriverWait(driver, 60).until(shown)
    return list(hints)


@pytest.fixture(scope="module")
def served_toy(toy_global_model):
    yield from serve(toy_global_model)


def test_place_a_reference_and_pick_a_suggested_colour(served_toy, browser, toy_global_model, tmp_path):
    """Issue 28: drop a reference (a thumbnail with a remove button), click the photo, pick a
    suggested swatch: the page shows the Colorizer's exact pixels at each step."""
    from selenium.webdriver.common.action_chains import ActionChains

    from toy_global import BLUE_AB, toy_photo

    scene = (toy_photo(np.random.default_rng(3)) * 255).round().astype(np.uint8)
    upload, ref = tmp_path / "old_toy.png", tmp_path / "summer.png"
    upload.write_bytes(encode(np.asarray(Image.fromarray(scene).resize((240, 240), Image.NEAREST).convert("L"))))
    ref.write_bytes(encode((toy_photo(np.random.default_rng(1), [BLUE_AB, BLUE_AB]) * 255).round().astype(np.uint8)))
    colorizer = Colorizer.load(toy_global_model)
    browser.get(served_toy)
    browser.find_element(By.ID, "file").send_keys(str(upload))
    src = wait_for_new_result(browser, None, timeout=300)  # the server traces its graphs first: slow on a busy CPU
    assert np.array_equal(image_of(browser, "#result-img"), colorizer.colorize(str(upload)))

    browser.find_element(By.ID, "reference-file").send_keys(str(ref))
    wait_for_new_result(browser, src)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").text.startswith("Done"))
    assert browser.find_element(By.ID, "reference-figure").is_displayed()
    assert browser.find_element(By.ID, "reference-remove").is_displayed()
    with_reference = colorizer.colorize(str(upload), reference=str(ref))
    assert np.array_equal(image_of(browser, "#result-img"), with_reference)

    result = browser.find_element(By.ID, "result-img")
    ActionChains(browser).move_to_element_with_offset(result, 0, 0).click().perform()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "suggestions").get_attribute("data-state") == "shown")
    hints = wait_for_full_result(browser)
    swatches = browser.find_elements(By.CSS_SELECTOR, "#suggestions button")
    expected = colorizer.suggest(str(upload), hints[0]["x"], hints[0]["y"], reference=str(ref))
    assert [s.get_attribute("data-color") for s in swatches] == [e["color"] for e in expected]
    swatches[-1].click()  # the least likely one: surely not the picker's colour already
    picked = wait_for_full_result(browser)
    assert picked == [{**hints[0], "color": expected[-1]["color"]}]
    assert browser.find_element(By.ID, "hint-color").get_attribute("value") == expected[-1]["color"]
    assert np.array_equal(image_of(browser, "#result-img"),
                          colorizer.colorize(str(upload), hints=picked, reference=str(ref)))
    shot = tmp_path / "koala_reference.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("KOALA_SCREENSHOT_REFERENCE"):
        Path(os.environ["KOALA_SCREENSHOT_REFERENCE"]).write_bytes(shot.read_bytes())

    browser.find_element(By.ID, "reference-remove").click()
    WebDriverWait(browser, 30).until(lambda d: not d.find_element(By.ID, "reference-figure").is_displayed())
    wait_for_full_result(browser)
    assert np.array_equal(image_of(browser, "#result-img"), colorizer.colorize(str(upload), hints=picked))
