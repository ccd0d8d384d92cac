"""The upload page in real headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import json

import pytest

from browser import headless_chromium, needs_chromium

from .server_proc import running_server

pytestmark = needs_chromium


@pytest.fixture()
def browser(tmp_path):
    with headless_chromium(tmp_path / "profile", window="900,900") as driver:
        yield driver


def test_upload_an_image_and_see_its_label(browser, bundle_dir, photo_path, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    classes = json.loads((bundle_dir / "skyclass.json").read_text())["class_names"]
    with running_server(bundle_dir) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: "classes:" in d.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "file").send_keys(str(photo_path))
        rows = wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, ".prediction")))
        labels = [r.find_element(By.CLASS_NAME, "label").text for r in rows]
        widths = [r.find_element(By.CLASS_NAME, "fill").get_attribute("style") for r in rows]
        status = browser.find_element(By.ID, "status").text
        browser.save_screenshot(str(tmp_path / "page.png"))
    assert len(labels) == 3 and set(labels) <= set(classes)
    assert status.startswith(f"{photo_path.name}: {labels[0]}")
    assert all("width:" in w for w in widths)
    assert browser.find_element(By.ID, "error").text == ""
