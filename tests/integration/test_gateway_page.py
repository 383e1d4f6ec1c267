"""The page of `triage serve` in a real headless Chromium (Debian's, through chromium-driver):
type a message, get the label, a bar for every class, and the classifiers beside them.

With `TRIAGE_SERVE_PNG=PATH` the page as the test left it is saved to PATH (docs/serve.png is
made by `make pictures`, from a pipeline under steady traffic)."""

from __future__ import annotations

import os

import pytest
from chromium import headless_chromium
from conftest import DEMO_STREAM, free_port, wait_until
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait
from test_gateway import TOKEN, call, offline_labels, start_gateway, start_pipeline

from triage.core.model.artifacts import available_labels
from triage.training.train import read_dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def browser():
    with headless_chromium(1280, 900) as session:
        yield session


def test_a_person_types_a_message_and_sees_every_class(procs, demo_models, tmp_path, browser):
    labels = start_pipeline(procs, demo_models)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    base = start_gateway(procs, "serve", tokens)
    text = read_dataset(DEMO_STREAM).texts[1]

    browser.get(f"{base}/")
    wait = WebDriverWait(browser, 60)
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "text").send_keys(text)
    browser.find_element(By.ID, "send").click()
    try:
        wait.until(ready.visibility_of_element_located((By.ID, "winner")))
    except TimeoutException:
        error = browser.find_element(By.ID, "error").text
        logs = browser.get_log("browser")
        raise AssertionError(f"no label; error shown: {error!r}; console: {logs}") from None
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars li")
    assert sorted(b.get_attribute("data-class") for b in bars) == sorted(labels)
    winner = browser.find_element(By.CSS_SELECTOR, "#bars li.winner").get_attribute("data-class")
    assert browser.find_element(By.ID, "winner").text == winner
    assert winner == offline_labels(demo_models, [text])[0]
    assert browser.find_element(By.ID, "complete").text == "complete"

    # The side panel: every classifier with its role, and the result among the latest.
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#classifiers tbody tr")) > 0)
    # (the panel is redrawn every 3 s: read it in one go, not element by element)
    script = "return [...document.querySelectorAll('#classifiers tbody td:first-child')]"
    names = browser.execute_script(script + ".map((td) => td.textContent)")
    assert set(names) == set(available_labels(demo_models))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#recent li"))
    wait.until(lambda b: b.find_element(By.ID, "health").text == "ready")
    if path := os.environ.get("TRIAGE_SERVE_PNG"):
        browser.save_screenshot(path)


def test_the_page_names_each_expected_class_that_does_not_vote_yet(procs, demo_models, browser):
    label = available_labels(demo_models)[0]
    port = free_port()
    procs.start(
        "serve",
        "serve",
        "--port",
        str(port),
        extra_env={"TRIAGE_EXPECTED_CLASSES": f"{label},no_such_class"},
    )
    procs.start("classifier", "classifier", "--models", str(demo_models), "--label", label)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _listening(base), 60, "serve to listen", interval=0.3)
    browser.get(f"{base}/")

    def missing(_) -> list[str] | None:  # the panel, once the one class that comes votes
        items = browser.find_elements(By.CSS_SELECTOR, "#missing li span:first-child")
        names = [item.text for item in items]
        shown = browser.find_element(By.ID, "missing-box").is_displayed()
        return names if shown and names == ["no_such_class"] else None

    assert WebDriverWait(browser, 120, poll_frequency=0.5).until(missing) == ["no_such_class"]
    assert "not ready" in browser.find_element(By.ID, "health").text


def _listening(base: str) -> bool:
    try:
        return call(f"{base}/healthz", token=None)[0] == 200
    except OSError:
        return False
