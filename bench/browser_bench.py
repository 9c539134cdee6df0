"""Browser benchmark: the built demo (dist/) in headless Chromium, read through the page's own
diagnostics line (#adaftr-diag: data-single-ms = mean of 50 single-instance predictions at
model load; data-sweep-ms = the last what-if sweep, one batch; data-sensitivity-ms and
data-relmap-ms = the sensitivity panel's and the relatedness map's batches (in the panel worker
once it holds the model: data-panels-off-thread); data-edit-to-paint-ms = from an edit's
dispatch to the first painted frame with everything in view recomputed; data-edit-work-ms = the
page's own work for the edit's frame, that time less the wait for the display's beat;
data-edit-late-work-ms = the same for the longest later frame of the edit's follow-ups (the
worker's panels, the editor's inputs off the screen), when there are any (see
web/src/ui/paint.rs); each for --edits random examples (every field changes) and as many
single-slider edits (one numeric field moved, the common edit)). Talks to chromedriver over
the plain WebDriver HTTP protocol (no Python packages needed).

With --train-csv FILE it also trains one epoch on FILE in the Train panel (the default
configuration, from scratch, in the page's worker) and reports the rows/s the panel measured
mid-epoch (as `adaftr train` measures it: the epoch's steps after its first; read before any
click, as the native run has the machine to itself), the page's input latency while the
worker trains (then, in the epoch's second half: a click on "random example" until the new
prediction is on the page, timed in the page), the worker's wasm memory at the end and the
worker's wasm size.

Usage: browser_bench.py DIST_DIR OUT_JSON [--loads 15] [--edits 60] [--train-csv FILE] [--window 1280x900]
"""

import argparse
import functools
import gzip
import glob
import http.server
import json
import os
import re
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}

    def log_message(self, *a):
        pass


def wd(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["value"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dist")
    ap.add_argument("out")
    ap.add_argument("--loads", type=int, default=15)
    ap.add_argument("--edits", type=int, default=60)
    ap.add_argument("--train-csv")
    ap.add_argument("--window", default="1280x900", help="the browser window, WIDTHxHEIGHT (a desktop's by default)")
    a = ap.parse_args()

    wasm = glob.glob(os.path.join(a.dist, "adaftr-web-*.wasm"))[0]
    raw = open(wasm, "rb").read()
    res = {"wasm_bytes": len(raw), "wasm_gzip_bytes": len(gzip.compress(raw, 9))}

    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=a.dist))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    dport = free_port()
    drv = subprocess.Popen([CHROMEDRIVER, f"--port={dport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{dport}"
    sid = None
    try:
        for _ in range(100):
            try:
                wd(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}}}}
        sid = wd(base, "POST", "/session", caps)["sessionId"]
        s = f"/session/{sid}"
        width, height = (int(v) for v in a.window.split("x"))
        wd(base, "POST", s + "/window/rect", {"width": width, "height": height})

        def js(script, *args):
            return wd(base, "POST", s + "/execute/sync", {"script": script, "args": list(args)})

        def diag(timeout=60):
            t = time.time()
            while time.time() - t < timeout:
                d = js("const e = document.getElementById('adaftr-diag'); return e && e.dataset.singleMs !== undefined"
                       " && document.getElementById('adaftr-model-name') ? {single: e.dataset.singleMs, sweep: e.dataset.sweepMs,"
                       " text: e.textContent} : null;")
                if d and d["single"] not in ("", "0"):
                    return d
                time.sleep(0.05)
            raise TimeoutError("the page never showed its diagnostics")

        singles = []
        for _ in range(a.loads):
            wd(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{port}/index.html"})
            singles.append(float(diag()["single"]))
        # Sweep a numeric feature (64 points): try the options until the diagnostics say 64.
        n_opts = js("return document.getElementById('adaftr-sweep-feature').options.length;")
        for i in range(n_opts):
            js("const s = document.getElementById('adaftr-sweep-feature'); s.selectedIndex = arguments[0];"
               " s.dispatchEvent(new Event('change', {bubbles: true}));", i)
            time.sleep(0.05)
            if " of 64 points" in diag()["text"]:
                break
        points = int(diag()["text"].split("sweep of ")[1].split(" points")[0])
        # Each edit (a random example) recomputes every panel in its render; the page times
        # each batch and the edit from dispatch to the next painted frame.
        read = ("const d = document.getElementById('adaftr-diag').dataset; return {sweep: d.sweepMs,"
                " sens: d.sensitivityMs, map: d.relmapMs, paint: d.editToPaintMs || '', work: d.editWorkMs || '',"
                " late: d.editLateWorkMs || '0', off: d.panelsOffThread,"
                " map_points: d.relmapPoints, sens_points: d.sensitivityPoints};")
        # A random example changes every field; a slider edit one numeric field (the first
        # slider, moved to a random point of its range).
        random_example = "document.getElementById('adaftr-random').click();"
        slider = ("const s = document.getElementById('adaftr-num-0'); const lo = +s.min, hi = +s.max;"
                  " s.value = String(lo + Math.random() * (hi - lo)); s.dispatchEvent(new Event('input', {bubbles: true}));")
        last = js(read)

        def edits(script):
            nonlocal last
            got = {"sweep": [], "sens": [], "map": [], "paint": [], "work": [], "late": []}
            for _ in range(a.edits):
                js(script)
                t = time.time()
                while time.time() - t < 5:
                    now = js(read)
                    if now["paint"] and (now["paint"], now["work"], now["late"]) != (last["paint"], last["work"], last["late"]):
                        break
                    time.sleep(0.02)
                last = now
                for k in got:
                    got[k].append(float(now[k]))
                time.sleep(0.1)
            return got

        ex = edits(random_example)
        one = edits(slider)
        sweeps = ex["sweep"]
        res.update({"sensitivity_ms": statistics.median(ex["sens"]), "sensitivity_points": int(last["sens_points"]),
                    "relmap_ms": statistics.median(ex["map"]), "relmap_points": int(last["map_points"]),
                    "edit_to_paint_ms": statistics.median(ex["paint"]), "edit_to_paint_max_ms": max(ex["paint"]),
                    "edit_work_ms": statistics.median(ex["work"]), "edit_work_max_ms": max(ex["work"]),
                    "slider_to_paint_ms": statistics.median(one["paint"]), "slider_to_paint_max_ms": max(one["paint"]),
                    "slider_work_ms": statistics.median(one["work"]), "slider_work_max_ms": max(one["work"]),
                    "sensitivity_all": ex["sens"], "relmap_all": ex["map"], "edit_to_paint_all": ex["paint"],
                    "edit_work_all": ex["work"], "slider_to_paint_all": one["paint"], "slider_work_all": one["work"],
                    # With the panel worker, the render that shows its batches (0: none apart).
                    "panels_off_thread": last["off"] == "true",
                    "edit_late_work_all": ex["late"], "slider_late_work_all": one["late"],
                    "edit_late_work_ms": statistics.median(ex["late"]), "edit_late_work_max_ms": max(ex["late"]),
                    "slider_late_work_ms": statistics.median(one["late"]), "slider_late_work_max_ms": max(one["late"]),
                    # Edits whose own frame, or a later frame of their follow-ups, took longer
                    # than a 60 Hz frame.
                    "edits_over_a_frame": sum(max(w, l) > 1000 / 60 for w, l in zip(ex["work"], ex["late"])),
                    "slider_edits_over_a_frame": sum(max(w, l) > 1000 / 60 for w, l in zip(one["work"], one["late"]))})
        if a.train_csv:
            res["train"] = measure_training(base, s, js, port, a.train_csv)
            worker = open(os.path.join(a.dist, "adaftr-train-worker_bg.wasm"), "rb").read()
            res["train"].update({"worker_wasm_bytes": len(worker), "worker_wasm_gzip_bytes": len(gzip.compress(worker, 9))})
        res.update({
            "single_ms": statistics.median(singles), "samples": len(singles),
            "sweep_ms": statistics.median(sweeps), "sweep_samples": len(sweeps), "sweep_points": points,
            "single_all": singles, "sweep_all": sweeps,
        })
    finally:
        if sid:
            try:
                wd(base, "DELETE", f"/session/{sid}")
            except OSError:
                pass
        drv.terminate()
        srv.shutdown()
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if not k.endswith("_all")}))


def measure_training(base, s, js, port, csv):
    """One epoch in the Train panel; see the module's docstring."""
    wd(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{port}/index.html"})
    for _ in range(600):
        if js("return document.getElementById('adaftr-predictions') !== null;"):
            break
        time.sleep(0.05)

    def element(css):
        found = wd(base, "POST", s + "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    js("const e = document.getElementById('adaftr-train-epochs'); e.value = '1';")
    wd(base, "POST", f"{s}/element/{element('#adaftr-train-file')}/value", {"text": os.path.abspath(csv)})
    js("document.getElementById('adaftr-train-start-button').click();")
    status = ("const p = document.getElementById('adaftr-train'); const t = document.getElementById('adaftr-train-status');"
              " return {phase: p.dataset.phase, steps: +t.dataset.steps, rate: +t.dataset.rowsPerSecond,"
              " memory: +t.dataset.memoryBytes, text: t.textContent};")
    started = time.time()
    while js(status)["phase"] != "Training":
        if time.time() - started > 600:
            raise TimeoutError("training never started")
        time.sleep(0.1)
    read_s = time.time() - started
    # The rate mid-epoch (before the epoch's validation and before the clicks below).
    rate, text = None, ""
    while True:
        st = js(status)
        total = re.search(r"step \d+ of (\d+)", st["text"])
        if st["phase"] != "Training" or st["steps"] >= max(2, int(total.group(1) if total else 0) // 2):
            rate, text = st["rate"], st["text"]
            break
        time.sleep(0.2)
    # Input latency while the worker trains: click, then wait in the page for the new
    # prediction (the predictions card's instance changes).
    latencies = []
    for _ in range(20):
        ms = wd(base, "POST", s + "/execute/async", {"script": """
            const done = arguments[0];
            const before = document.getElementById('adaftr-predictions').dataset.instance;
            const t0 = performance.now();
            document.getElementById('adaftr-random').click();
            const f = () => document.getElementById('adaftr-predictions').dataset.instance !== before
                ? done(performance.now() - t0) : requestAnimationFrame(f);
            requestAnimationFrame(f);""", "args": []})
        latencies.append(ms)
        time.sleep(0.05)
    while js(status)["phase"] not in ("Done", "Failed", "Stopped"):
        if time.time() - started > 3600:
            raise TimeoutError("training never finished")
        time.sleep(0.5)
    end = js(status)
    if end["phase"] != "Done":
        raise RuntimeError(f"training ended {end['phase']}: {end['text']}")
    return {"rows_per_s": rate, "status_mid_epoch": text, "read_seconds": read_s, "memory_bytes": end["memory"],
            "input_latency_ms_median": statistics.median(latencies), "input_latency_ms_max": max(latencies),
            "csv_bytes": os.path.getsize(csv), "rows": sum(1 for _ in open(csv)) - 1}


if __name__ == "__main__":
    main()
