"""report.html in a real headless Chromium: it loads, shows every table, and decodes every image.

Chromium and its driver come from Debian's packages ``chromium`` and ``chromium-driver``
(.ci/run installs them). In CI (``CI=true``) their absence fails the test; elsewhere it
skips with the install command.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
from pathlib import Path

import pandas as pd
import pytest

from hierbayes import cli

FORMULA = "Reaction ~ Days + (Days | Subject)"
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,1600"]

INSPECT = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
Promise.allSettled(images.map(img => img.decode())).then(decoded => done({
  ready: document.readyState,
  title: document.title,
  tables: Array.from(document.querySelectorAll("table")).map(t => ({
    id: t.id, rows: t.tBodies[0].rows.length, width: t.getBoundingClientRect().width,
    height: t.getBoundingClientRect().height})),
  images: images.map((img, k) => ({
    name: img.dataset.name, decoded: decoded[k].status, width: img.naturalWidth, height: img.naturalHeight,
    shown: img.getBoundingClientRect().width})),
}));
"""


def _missing(what: str):
    message = f"{what}; install Debian's packages: apt-get install -y chromium chromium-driver"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must open the report in a browser: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _missing("Chromium or chromedriver is not on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, sleepstudy) -> Path:
    data = tmp_path_factory.mktemp("data") / "sleep.csv"
    sleepstudy.to_csv(data, index=False)
    out = tmp_path_factory.mktemp("runs") / "sleep"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["fit", str(data), FORMULA, "--draws", "200", "--tune", "200", "--chains", "2",
                         "--no-progress", "--out", str(out)])
    assert code in (0, 1)
    return out


@pytest.fixture(scope="module")
def page(browser, run_folder) -> dict:
    browser.get((run_folder / "report.html").as_uri())
    return browser.execute_async_script(INSPECT)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def test_report_loads(page):
    assert page["ready"] == "complete"
    assert page["title"] == f"hierbayes: {FORMULA}"


def test_every_table_is_shown_with_all_its_rows(page, run_folder):
    tables = {t["id"]: t for t in page["tables"]}
    csvs = sorted(p for p in run_folder.glob("*.csv") if p.stem != "summary")  # summary = the next two
    assert set(tables) == {f"table-{p.stem}" for p in csvs} | {"table-model"}
    for path in csvs:
        table = tables[f"table-{path.stem}"]
        assert table["rows"] == len(pd.read_csv(path)), path.name
        assert table["width"] > 0 and table["height"] > 0, path.name


def test_every_image_is_decoded_at_its_size(page, run_folder):
    images = {img["name"]: img for img in page["images"]}
    pngs = sorted(run_folder.glob("*.png"))
    assert set(images) == {p.stem for p in pngs} == {"shrinkage_Subject", "trace", "ppc"}
    for path in pngs:
        img = images[path.stem]
        assert img["decoded"] == "fulfilled", path.name
        assert (img["width"], img["height"]) == png_size(path), path.name
        assert img["width"] > 0 and img["shown"] > 0, path.name
