#!/usr/bin/env python3
"""Page-level smoke test of the demo (scripts/test_web runs it after `scripts/web --build-only`):
serve target/web on 127.0.0.1, open it in headless Chromium with WebGPU through ChromeDriver's
HTTP API (no client library needed), let the page train `steps` steps unattended (?smoke=N) and
read its verdict: PASS when the loss fell, the page sampled text and wrote a checkpoint.
Fails, naming what happened, when the page reports FAIL, WebGPU is missing or time runs out.
WEB_SMOKE_SCREENSHOT=page.png saves what the page shows at the end."""
import base64, functools, http.server, json, os, socket, subprocess, sys, threading, time, urllib.request

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
TIMEOUT_S = 900


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["value"]


def main():
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory="target/web")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = f"http://127.0.0.1:{server.server_port}/?smoke={STEPS}"

    port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless", "--enable-unsafe-webgpu", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--no-first-run"]
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}}
        session = call(base, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        call(base, "POST", s + "/url", {"url": page})
        started = time.time()
        verdict = ""
        while time.time() - started < TIMEOUT_S:
            verdict = call(base, "POST", s + "/execute/sync", {
                "script": "const r = document.getElementById('result');"
                          " return r ? r.textContent : '';", "args": []})
            if verdict:
                break
            time.sleep(1)
        shot = os.environ.get("WEB_SMOKE_SCREENSHOT")
        if shot:
            with open(shot, "wb") as f:
                f.write(base64.b64decode(call(base, "GET", s + "/screenshot")))
        call(base, "DELETE", s)
    finally:
        driver.terminate()
        server.shutdown()
    print(f"web smoke ({time.time() - started:.0f} s): {verdict or 'no verdict in time'}")
    sys.exit(0 if verdict.startswith("PASS") else 1)


main()
