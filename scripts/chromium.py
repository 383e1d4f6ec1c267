"""A headless Chromium session through Debian's chromium and chromium-driver, the one the page's
test (tests/integration/test_gateway_page.py) and `make pictures` (docs_pictures.py) drive."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed."""


@contextmanager
def headless_chromium(width: int, height: int) -> Iterator[Any]:
    """A browser of a fresh profile with a `width` × `height` window, quit on leaving."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise BrowserMissing("chromium and chromium-driver: `make install` brings them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    try:
        session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
        try:
            yield session
        finally:
            session.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
