#!/usr/bin/env python3
"""Drives swarmer's web UI in headless Chromium (Debian's chromium and chromedriver, through
Selenium): fill the form, start a run against the built-in target, see the statistics table and
the request-rate chart fill, edit the users, reset, stop, download the stats CSV through the page
and check it against the server's numbers, try a cross-origin POST /swarm from another site's
page, and open the HTML report with the network off. Screenshots go to SCREENSHOTS.

    browser_test.py UI_URL TARGET_URL OTHER_ORIGIN_URL REPORT_FILE OPEN_REPORT_FILE SCREENSHOTS

Run by tests/browser.rs; exits non-zero with a message on the first check that fails.
"""
import json
import os
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

UI, TARGET, OTHER, REPORT, OPEN_REPORT, SHOTS = sys.argv[1:7]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--window-size=1400,1000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='swarmer-chromium-')}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait(what, check, timeout=20):
    started = time.time()
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception:  # noqa: BLE001 - the page may be mid-update
            pass
        if time.time() - started > timeout:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def server_stats():
    return json.load(urllib.request.urlopen(UI + "/stats/requests"))


def aggregated_requests(driver):
    rows = driver.find_elements(By.CSS_SELECTOR, "#stats-body tr.total td")
    return int(rows[2].text) if rows else 0


def fill(driver, field, value):
    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(value)


def main():
    driver = browser()
    try:
        driver.get(UI)
        wait("the page", lambda: driver.find_element(By.ID, "state").text == "ready")
        fill(driver, "user_count", "6")
        fill(driver, "spawn_rate", "100")
        fill(driver, "host_input", TARGET)
        driver.find_element(By.ID, "swarm").click()
        wait("traffic in the statistics table", lambda: aggregated_requests(driver) > 100)
        wait("the state running", lambda: driver.find_element(By.ID, "state").text == "running")
        driver.find_element(By.CSS_SELECTOR, "nav a[data-tab=charts]").click()
        chart = driver.find_element(By.ID, "chart-rps")
        wait("the request-rate chart", lambda: int(chart.get_attribute("data-points") or 0) >= 2
             and float(chart.get_attribute("data-max") or 0) > 0)
        heat = driver.find_element(By.ID, "chart-heat")
        wait("the heat map", lambda: int(heat.get_attribute("data-cells") or 0) > 0)
        time.sleep(1.5)
        driver.save_screenshot(os.path.join(SHOTS, "ui-charts.png"))
        driver.find_element(By.CSS_SELECTOR, "nav a[data-tab=stats]").click()
        driver.save_screenshot(os.path.join(SHOTS, "ui-running.png"))

        # Edit the running test: 12 users.
        driver.find_element(By.ID, "edit").click()
        fill(driver, "user_count", "12")
        driver.find_element(By.ID, "swarm").click()
        wait("12 users", lambda: driver.find_element(By.ID, "users").text == "12")

        # Reset the statistics.
        before = aggregated_requests(driver)
        driver.find_element(By.ID, "reset").click()
        wait("a reset", lambda: 0 < aggregated_requests(driver) < before)

        # Stop.
        driver.find_element(By.ID, "stop").click()
        wait("the state stopped", lambda: driver.find_element(By.ID, "state").text == "stopped")
        time.sleep(1.2)

        # The stats CSV, downloaded through the page, is the server's numbers.
        csv_text = driver.execute_async_script(
            "const done = arguments[0]; fetch('/stats/requests/csv').then(r => r.text()).then(done);")
        row = next(line for line in csv_text.splitlines() if line.startswith(",Aggregated,"))
        csv_requests, csv_failures = (int(x) for x in row.split(",")[2:4])
        total = server_stats()["stats"][-1]
        if (csv_requests, csv_failures) != (total["num_requests"], total["num_failures"]):
            sys.exit(f"CSV {csv_requests}/{csv_failures} but the server says {total}")
        if aggregated_requests(driver) != total["num_requests"]:
            sys.exit(f"the page shows {aggregated_requests(driver)}, the server {total['num_requests']}")
        driver.save_screenshot(os.path.join(SHOTS, "ui-stopped.png"))

        # Another site's page cannot start a test in this browser.
        driver.get(OTHER)
        outcome = driver.execute_async_script(
            "const done = arguments[0];"
            f"fetch('{UI}/swarm', {{method: 'POST', mode: 'no-cors', body: new URLSearchParams('user_count=50&spawn_rate=50')}})"
            ".then(() => done('sent'), (e) => done('blocked: ' + e));")
        time.sleep(1)
        if server_stats()["state"] != "stopped":
            sys.exit(f"a cross-origin POST /swarm started a run ({outcome})")

        # The HTML report renders offline.
        driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        driver.get("file://" + REPORT)
        wait("the report's tables and charts", lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-rendered") == "yes")
        for chart_id in ["chart-rps", "chart-times", "chart-users"]:
            points = int(driver.find_element(By.ID, chart_id).get_attribute("data-points") or 0)
            if points < 2:
                sys.exit(f"the report's {chart_id} has {points} points")
        if int(driver.find_element(By.ID, "chart-heat").get_attribute("data-cells") or 0) == 0:
            sys.exit("the report's heat map is empty")
        if len(driver.find_elements(By.CSS_SELECTOR, "#stats-body tr")) < 2:
            sys.exit("the report's statistics table is empty")
        driver.save_screenshot(os.path.join(SHOTS, "report.png"))
        driver.set_window_size(1400, 3000)
        driver.save_screenshot(os.path.join(SHOTS, "report-full.png"))
        # An open-model report also charts the starts and the service times.
        driver.get("file://" + OPEN_REPORT)
        wait("the open-model report", lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-rendered") == "yes")
        for chart_id in ["chart-starts", "chart-service"]:
            points = int(driver.find_element(By.ID, chart_id).get_attribute("data-points") or 0)
            if points < 2:
                sys.exit(f"the open-model report's {chart_id} has {points} points")
        driver.save_screenshot(os.path.join(SHOTS, "report-open-model.png"))
        print("browser checks passed")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
