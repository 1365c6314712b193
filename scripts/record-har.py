#!/usr/bin/env python3
"""Records a real browser session as a HAR file: Debian's Chromium (headless, driven by
Selenium through chromium-driver) opens the built-in target's /app/flow page, which logs in,
creates a post, comments on it and reads the comment back with fetch(); the browser's own
network log (Chrome DevTools protocol events, response bodies through Network.getResponseBody)
becomes HAR 1.2, as DevTools' "Save all as HAR" writes it.

    scripts/record-har.py target/release/swarmer tests/har/flow.har

The target is seeded first (100 posts, 250 comments, 100 logins, not recorded) so the recorded
ids and tokens are values a converter must correlate, not 1s. Loopback only.
"""
import datetime
import json
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def post(base, path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request).read())


def seed(base):
    for i in range(100):
        post(base, "/api/login", {"username": f"seed{i}", "password": "x"})
        post(base, "/api/posts", {"title": f"seed {i}", "body": "seed", "userId": i})
    for i in range(250):
        post(base, "/api/posts/1/comments", {"body": f"seed {i}"})


def headers(pairs):
    return [{"name": k, "value": v} for k, v in pairs.items()]


def iso(wall):
    stamp = datetime.datetime.fromtimestamp(wall, tz=datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def har_entries(driver, events):
    sent, answered, finished = {}, {}, {}
    for event in events:
        message = json.loads(event["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            sent[params["requestId"]] = params
        elif method == "Network.responseReceived":
            answered[params["requestId"]] = params
        elif method == "Network.loadingFinished":
            finished[params["requestId"]] = params
    entries = []
    for rid, req in sent.items():
        request = req["request"]
        if not request["url"].startswith("http"):
            continue
        response = answered.get(rid)
        body = {"text": "", "mimeType": ""}
        if response:
            try:
                got = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": rid})
                body = {"text": got["body"], "mimeType": response["response"].get("mimeType", "")}
                if got.get("base64Encoded"):
                    body["encoding"] = "base64"
            except Exception:  # no body (a redirect, a 204)
                body["mimeType"] = response["response"].get("mimeType", "")
        url = request["url"]
        query = url.split("?", 1)[1] if "?" in url else ""
        entry = {
            "startedDateTime": iso(req["wallTime"]),
            "time": round(((finished[rid]["timestamp"] if rid in finished else req["timestamp"]) - req["timestamp"]) * 1000, 3),
            "_resourceType": req.get("type", "Other").lower(),
            "request": {
                "method": request["method"],
                "url": url,
                "httpVersion": "HTTP/1.1",
                "headers": headers(request.get("headers", {})),
                "queryString": [{"name": p.split("=")[0], "value": p.split("=", 1)[-1]} for p in query.split("&") if p],
                "cookies": [],
                "headersSize": -1,
                "bodySize": len(request.get("postData", "")),
            },
            "response": {
                "status": response["response"]["status"] if response else 0,
                "statusText": response["response"].get("statusText", "") if response else "",
                "httpVersion": "HTTP/1.1",
                "headers": headers(response["response"].get("headers", {})) if response else [],
                "cookies": [],
                "content": {"size": len(body["text"]), **body},
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": len(body["text"]),
            },
            "cache": {},
            "timings": {"send": 0, "wait": 0, "receive": 0},
        }
        if "postData" in request:
            ctype = request.get("headers", {}).get("Content-Type", "")
            entry["request"]["postData"] = {"mimeType": ctype, "text": request["postData"]}
        entries.append(entry)
    entries.sort(key=lambda e: e["startedDateTime"])
    return entries


def main():
    binary, out = sys.argv[1], sys.argv[2]
    target = subprocess.Popen([binary, "target", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        base = next(w for w in target.stdout.readline().split() if w.startswith("http")).rstrip("/")
        seed(base)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.get(base + "/app/flow")
            deadline = time.time() + 20
            while driver.title != "done":
                if driver.title.startswith("failed") or time.time() > deadline:
                    raise SystemExit(f"the page did not finish: {driver.title}")
                time.sleep(0.1)
            time.sleep(0.3)
            entries = har_entries(driver, driver.get_log("performance"))
        finally:
            driver.quit()
        har = {"log": {"version": "1.2", "creator": {"name": "swarmer scripts/record-har.py", "version": "1"},
                       "browser": {"name": "Chromium", "version": ""}, "pages": [], "entries": entries}}
        with open(out, "w") as f:
            json.dump(har, f, indent=2)
        print(f"recorded {len(entries)} requests into {out}")
    finally:
        target.kill()
        target.wait()


if __name__ == "__main__":
    main()
