"""The upload page in real headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from .server_proc import running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium not installed (apt-get install chromium chromium-driver; `make test` "
           "does it via `make browser`)")


@pytest.fixture()
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=900,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


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
