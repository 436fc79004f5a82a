"""A real headless Chromium for the page tests (verify's report, serve's draw page).

Debian's ``chromium`` and ``chromium-driver`` are installed on first use (``ensure_packages``, as
the C toolchains are), driven by Selenium. The flags keep Chromium off the network: this machine
reaches no Google host, and without them Chromium's background connections are refused by the
dozen. ``console_errors`` returns what the page logged at SEVERE level, so a test can require none.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from cortex_m.toolchain import ensure_packages, unavailable_reason

BROWSER_TOOLS = {"chromium": "chromium", "chromedriver": "chromium-driver"}
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def unavailable() -> Optional[str]:
    """None when Chromium is here or can be installed; else why not, in one line (for a skip)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra has it)"
    return unavailable_reason(BROWSER_TOOLS)


@contextmanager
def chromium(width: int = 1280, height: int = 900, mobile: bool = False) -> Iterator[Any]:
    """A Selenium WebDriver on Debian's headless Chromium, with console logging on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_packages(BROWSER_TOOLS)
    profile = tempfile.mkdtemp(prefix="digitkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    if mobile:
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": True}},
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """Console messages at SEVERE level since the last call (a failed load, a JS exception)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def screenshot(driver: Any, path: Path, full_page: bool = True) -> Path:
    """A PNG of the page; ``full_page`` grows the window to the document's height first."""
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.execute_script("return document.documentElement.clientWidth")
        driver.set_window_size(max(int(width), 360), min(int(height) + 100, 16000))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
