"""The review page in real headless Chromium: keys decide, every decision is on disk at once,
and a new server on the same folder shows them again."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from browser import headless_chromium, needs_chromium
from skyclass.prepare.decisions import read_decisions
from skyclass.review.server import make_server

pytestmark = needs_chromium


@pytest.fixture()
def browser(tmp_path):
    with headless_chromium(tmp_path / "profile", window="1100,900") as driver:
        yield driver


@contextmanager
def review_server(review_dir):
    server = make_server(review_dir, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _saved(review_dir) -> dict[str, tuple[str, str]]:
    path = review_dir / "decisions.csv"
    if not path.exists():
        return {}
    return {d.source: (d.action, d.label) for d in read_decisions(path)}


def test_keyboard_review_saves_and_reloads(browser, review_copy):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)

    def press(key: str) -> None:
        browser.find_element(By.TAG_NAME, "body").send_keys(key)

    def shown() -> tuple[str, str]:
        info = browser.find_element(By.ID, "info").text
        return info, info.split(" · ")[2].rsplit(" (", 1)[0]  # kind..., source

    with review_server(review_copy) as url:
        browser.get(url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        assert "0 decided" in browser.find_element(By.ID, "progress").text
        while not shown()[0].startswith("wrong_label"):
            press("j")
        first = shown()[1]
        suggested = browser.find_element(By.ID, "suggested").text
        press("a")
        wait.until(lambda d: _saved(review_copy).get(first) == ("relabel", suggested))
        wait.until(lambda d: shown()[1] != first)  # moved on to the next undecided suspect
        second = shown()[1]
        press("x")
        wait.until(lambda d: _saved(review_copy).get(second) == ("exclude", ""))
        press("u")
        wait.until(lambda d: second not in _saved(review_copy))
        # The page redraws once the server has answered: wait for it, do not race it.
        wait.until(lambda d: shown()[1] == second, "undo shows the suspect again")
        press("x")
        wait.until(lambda d: _saved(review_copy).get(second) == ("exclude", ""))
        assert browser.find_element(By.ID, "error").text == ""
        # The page loaded nothing but this server's own URLs.
        urls = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert all(u.startswith(url) for u in urls), urls

    # "Kill" the server and open the folder again: the decisions are back.
    with review_server(review_copy) as url:
        browser.get(url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        assert "2 decided" in browser.find_element(By.ID, "progress").text
        assert shown()[1] not in (first, second), "opens at the first undecided suspect"
    assert _saved(review_copy) == {first: ("relabel", suggested), second: ("exclude", "")}
