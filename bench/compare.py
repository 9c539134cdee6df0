"""Side-by-side benchmark driver: adaftr (Rust/candle) against the PyTorch reference.

Every measurement alternates between `adaftr bench ...` (a subprocess) and the same
measurement in PyTorch (in this process; eager, and `torch.compile`d where that works on
this machine), round after round (the order flips each round), so that machine noise hits
both; the table reports medians over rounds and the ratio ours / PyTorch (above 1 means we
are faster, or for latencies: PyTorch time / ours), against the faster PyTorch column.

Usage: compare.py --adaftr BIN --dir WORK --rounds N --ingest-file F [--browser JSON] [--no-compile] --out BENCHMARKS.md
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file

import torch_ref

THREADS = 2


def ours(bin_, *args):
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([bin_, "bench", *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def med(xs):
    return float(np.median(xs)) if xs else float("nan")


def cpu_name():
    """The CPU's model name, with its family and model numbers (a virtual machine often
    shows only a brand) and the widest vector extension it has."""
    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            info.setdefault(k.strip(), v.strip())
    except OSError:
        return platform.processor()
    flags = set(info.get("flags", "").split())
    vec = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{info.get('model name', platform.processor())} (family {info.get('cpu family', '?')}, "
            f"model {info.get('model', '?')}; {vec})")


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except OSError:
        return "?"


# The benchmarked models (`adaftr bench ... --model NAME`) and what each row measures.
MODELS = {
    "literal": "MODEL.md's literal spec (`joint`)",
    "default": "default configuration (PLE, `readout`)",
    "transfer": "full AdaFTR loss (`transfer`)",
    "plain": "plain shared-bottom (`cl = none`)",
    "ple": "plain PLE (`cl = none`)",
}
TRAIN = ["literal", "default", "transfer", "plain", "ple"]
INFER = ["literal", "default", "transfer", "ple"]
LATENCY = ["literal", "default"]


def try_compiled(d, name, batch, parity):
    """A `torch.compile`d reference for `name`, warmed up (compilation is not timed), or the
    reason it does not work here. Adds to `parity` how far its first-batch predictions and
    total loss are from ours."""
    try:
        ref = torch_ref.Reference(f"{d}/{name}.safetensors", f"{d}/data.safetensors", compiled=True)
        ours_pred, ours_losses = load_file(f"{d}/parity-{name}.safetensors"), json.load(open(f"{d}/parity-{name}.json"))
        cat, num, click, conv = ref.batch(0, int(ours_losses["batch"]))
        ref.model.train()
        total, _ = ref.step_loss(cat, num, click, conv, torch_ref.cl_scale(ref.config, 0))
        parity["compiled_loss_total"] = abs(total.item() - ours_losses["total"]) / max(abs(ours_losses["total"]), 1.0)
        ref.model.eval()
        with torch.inference_mode():
            pctr = ref.predict(cat, num)[0]
        parity["compiled_pctr"] = float(np.abs(pctr.numpy() - ours_pred["pctr"]).max())
        ref.train(batch, 1, 2)
        ref.infer(batch, 1)
        ref.latency(2)
        return ref, None
    except Exception as e:  # noqa: BLE001 - any failure of the compiler is reported, not fatal
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


# (what, model) -> the least ratio adaftr / fastest PyTorch the project aims for.
RATIO_TARGETS = {("train", "literal"): 1.5, ("train", "default"): 1.5, ("train", "transfer"): 1.5,
                 ("train", "plain"): 1.3, ("train", "ple"): 1.3,
                 **{("infer", m): 1.3 for m in INFER}}
LATENCY_TARGET_US = 25.0
BROWSER_LATENCY_TARGET_MS = 0.050
INGEST_TARGET_MB_S = 300.0
STREAM_RSS_TARGET_MIB = 1024.0
STREAM_SPEED_TARGET = 0.9
BROWSER_TRAIN_TARGET = 0.3


def targets(measured, browser, ingest, stream=None):
    """The targets' table rows: each target, the figure measured in this run, met or not."""
    kinds = {"train": "Training", "infer": "Batch inference"}
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    out = []
    for (what, m), want in RATIO_TARGETS.items():
        if (what, m) in measured:
            got = measured[(what, m)][1]
            out.append(f"| {kinds[what]}, {MODELS[m]}: at least {want}x PyTorch | {got:.2f}x | {yes(got >= want)} |")
    for (what, m), (us, _) in measured.items():
        if what == "latency":
            out.append(f"| Single-instance latency, {MODELS[m]}: under {LATENCY_TARGET_US:.0f} µs natively | "
                       f"{us:.1f} µs | {yes(us < LATENCY_TARGET_US)} |")
    if browser:
        ms = browser["single_ms"]
        out.append(f"| Single-instance latency in the browser (the demo's model): under "
                   f"{BROWSER_LATENCY_TARGET_MS * 1000:.0f} µs | {ms * 1000:.0f} µs | {yes(ms < BROWSER_LATENCY_TARGET_MS)} |")
    if ingest:
        mb = ingest["mb_per_s"]
        out.append(f"| CSV ingest: at least {INGEST_TARGET_MB_S:.0f} MB/s | {mb:.0f} MB/s | {yes(mb >= INGEST_TARGET_MB_S)} |")
    if browser and browser.get("train") and browser["train"].get("native_rows_per_s"):
        t = browser["train"]
        share = t["rows_per_s"] / t["native_rows_per_s"]
        out.append(f"| Training in the browser: at least {BROWSER_TRAIN_TARGET:.0%} of native single-thread rows/s | "
                   f"{share:.0%} | {yes(share >= BROWSER_TRAIN_TARGET)} |")
    if stream:
        big, speed = stream["big"], stream["speed"]
        rss = big["peak_rss_mib"]
        out.append(f"| Streamed training of {big['rows']:,} rows: peak RSS under {STREAM_RSS_TARGET_MIB:.0f} MiB | "
                   f"{rss:.0f} MiB | {yes(rss < STREAM_RSS_TARGET_MIB)} |")
        out.append(f"| Streamed training: at least {STREAM_SPEED_TARGET:.0%} of the in-memory samples/s | "
                   f"{speed:.0%} | {yes(speed >= STREAM_SPEED_TARGET)} |")
    return out


def measure_stream(bin_, big_file, file, rounds=3):
    """Streamed training: the big file's fit pass and peak memory, and streamed against loaded
    samples/s on the smaller file (same model; alternating processes, median of `rounds`)."""
    big = ours(bin_, "stream", "--file", big_file, "--mode", "stream", "--steps", "200")
    runs = {"memory": [], "stream": []}
    for r in range(rounds):
        order = ["memory", "stream"] if r % 2 == 0 else ["stream", "memory"]
        for mode in order:
            runs[mode].append(ours(bin_, "stream", "--file", file, "--mode", mode, "--steps", "200",
                                   "--shuffle-buffer", "200000"))
    pick = {m: {k: med([x[k] for x in v if x.get(k) is not None]) for k in v[0] if isinstance(v[0][k], (int, float))}
            for m, v in runs.items()}
    return {"big": big, **pick, "speed": pick["stream"]["samples_per_s"] / pick["memory"]["samples_per_s"]}


# Why the browser numbers are what they are (kept with the table it explains).
WHERE_BROWSER_TIME_GOES = "Where the time goes:\n- **The edit.** An edit's own render computes the prediction and the 64-point sweep. The sensitivity panel (about 290 rows) and the 24 x 24 map (576 rows), the page's largest inference, are batches for the panel worker (`web/src/ui/offload.rs`, `web/src/panel_worker.rs`): the app's own wasm, started again in a module worker once the first model has loaded (the page posts it the module it compiled, so nothing is downloaded or compiled again), predicts them while the page renders the edit; the panels follow in the next render, marked `aria-busy` until then, and the page predicts them itself until the worker holds the model. A batch goes out as typed arrays of the instance and each row's changes (`web/src/variations.rs`: about 3,900 numbers for both panels, where their 869 rows would be 69,000; in a profile of 40 slider edits, building, copying and posting the batches took the page's thread 1.1 ms an edit as rows and 0.5 ms as changes, most of it the two `postMessage` calls themselves, and the app's render 2.2 ms and 1.4 ms), one per panel at a time; a newer edit waits for it and replaces any other waiting batch, so a dragged slider queues nothing. In two runs of three rounds, each alternating with the site before it: a slider edit's own frame took 5.4-5.5 and 6.7-7.7 ms at the median (before: 10.4-11.8 and 11.1-12.1), with no slider edit over a frame in 240; a random example's own frame 10.9-13.3 and 12.2-12.8 ms (before: 14.1-15.2 and 15.4-20.6), 0-3 and 1-9 of 40 over a frame (before: 4-12 and 11-32); the render that shows the worker's panels 3-4 ms (at most 11 ms). The price is a frame of latency: the first frame with every panel comes 17-25 ms after the edit, against 11-22 ms. In the worker, sharing the two cores with the page, the batches take a little longer than they did on the page (map 3.0-4.3 ms against 2.7-3.7). Every row of those batches is the instance with one or two features changed (`core/src/nn/shared_rows.rs`). The first layers (PLE's four experts read the 272-wide embedding vector: 60% of a row's products) are computed as the instance's product plus each row's changed columns: the panels' inference fell from 16 ms to 8 ms. Each expert's second layer follows a ReLU, so its input changes everywhere, but only a few of its 256 units switch sign when one or two features change (0 to 14 per row on the map): it is computed as the instance's output, plus the part linear in the change (one small matrix per group of rows, over the units active for the instance), plus the switched units' rows of the weights. Under Node.js (`core/examples/what_if.rs`, the same batches on the default model): map 4.4 -> 2.7 ms, sensitivity 2.4 -> 1.7 ms, sweep 0.59 -> 0.38 ms; in the page, 4.6-4.85 -> 2.8-3.1 ms and 2.7-3.1 -> 2.0-2.1 ms. The map's 576 cells are pixels of a canvas under the SVG (one `putImageData`) instead of 576 SVG rectangles (an attribute diff and a style recalculation each); the map's figure is memoised on the map itself, so an edit that only moves the instance's ring on the examples' strip does not rebuild it; the sliders re-render only when their own value changes; the sensitivity panel lists its top 12 features (all on request); the URL fragment is written once the state has been unchanged for 250 ms (`replaceState` costs about 2 ms of the main thread, and a dragged slider changes the state every frame). The editor's groups that are off screen skip layout and paint (`content-visibility: auto`): a random example changes all 79 inputs, and laying them all out was half of that edit's work (Chromium's trace of 20 edits: style, layout and paint 16.4 ms before, 6.4 ms after per random example; 8.2 and 3.8 ms per slider edit). An example, Reset or a link changes every input, and most inputs are off the screen: their DOM updates now wait (`OffScreen` in `web/src/editor.rs`; an `IntersectionObserver` in `web/src/ui/editor.rs` keeps which inputs are on or near the screen). The edit's own render updates the inputs in view (about 9 of 79 in a 1280 x 900 window), the predictions and the what-if chart; the rest follow in a render of their own just after the first paint with the panels (within three frames at most), with the editor marked `aria-busy` until then. An edit of one field changes it at once. A field's label and description, and a categorical field's options (one field has 1,200, another 228), are components of their own that a new value does not re-render, and a slider's range attributes are made once per model. In Chromium's trace of 30 random examples on each step's build, the edit's render took 7.2-7.7 ms before, 5.1-5.6 ms with the components alone, and 4.5-4.6 ms with the inputs off the screen waiting; the frame's style, layout and paint about 3 ms (2.9-3.6) throughout. An edit's later frames are timed too: each follow-up's render (the worker's panels, the inputs off the screen) from the start of its task, plus its frame's style, layout and paint; the longest such frame is the diagnostics line's second number, and an edit counts as over a frame when either number passes 16.7 ms. A random example's own frame now takes 9.7-11.0 ms at the median against 13.3-15.4 for the site before in the same rounds (8.5-9.7 against 12.7-14.7 in three earlier rounds); its later frames 7.2-7.8 ms. In eight rounds, 8 of 640 edits still passed a frame (6 of 320 random examples, 2 of 320 slider edits), against 66 of 640 for the site before, on this shared 2-core machine where the page's thread, the panel worker, Chromium's raster threads and the benchmark's own polling share the two cores. With the batches sent as changes, none of 1,040 edits passed a frame in thirteen rounds later the same day (4 of 800 for the site before in the same alternations, the machine being quieter then), the own frame now counting any of the worker's answers that came before it and were painted in it. Tried alone in an earlier session, a categorical field's options as a component of their own measured no faster in the edit's frame (12.1 / 11.2 ms against 12.1 / 11.8 in paired rounds); the trace above, which times the render alone, shows the gain that the frame's noise hid.\n- **Training.** In wasm the dense layers' matrix products take a kernel of the project's own (`core/src/cpu_kernel/simd128_gemm.rs`: a 2 x 16 register tile; the `gemm` crate's 12 x 4 tile spills, since V8 keeps 16 vector registers on x86-64). They are 85-90% of a wasm step and run at simd128's peak on this machine: two multiplies and two adds per cycle on four lanes, against AVX-512's two 16-lane FMAs natively (`f32x4.relaxed_madd` measured no faster), so the products alone bound the page at about a third of native. Chromium stayed below Node.js on the same code (23% against 29-31% of native) for three reasons, each measured in the same runs: the worker went through wasm-opt, whose output trains as fast once V8 has optimised it but takes seconds longer to get there (its first steps run in V8's baseline compiler; about a fifth fewer rows/s over half an epoch; Node.js ran `cargo`'s output, not wasm-opt's), so the worker now skips wasm-opt (no larger gzipped); the page timed its speed from the first step while `adaftr train` leaves the first step out, so both now use one definition (`core/src/train/throughput.rs`); and the bench clicked \"random example\" twenty times during the measured half epoch, the page's main thread sharing the 2 cores with the worker, so it now clicks in the second half. The kernel also reads a left operand stored by rows in place instead of packing it, and the products' outputs are no longer zeroed first (together about 5% of a step under Node.js). Steps, in rows/s on this machine: 12.2-13.3k before; 16.0-17.0k without wasm-opt and with the kernel's changes (29-30% of native, old measure); 17.4-17.9k measured as the CLI measures (the table's three rounds; an earlier build of the same code gave 17.8-18.2k).\n\n"


def native_single_thread(bin_, train, valid, work, rounds=3):
    """`adaftr train` of the default configuration for one epoch on one thread: the epoch
    line's samples/s (steps after the first, validation excluded), median of `rounds`."""
    import re
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    speeds = []
    for _ in range(rounds):
        res = subprocess.run([bin_, "train", "--train", train, "--valid", valid, "--epochs", "1", "--out",
                              os.path.join(work, "native-1t.safetensors")], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"native single-thread training failed:\n{res.stderr}")
        speeds.append(float(re.search(r"\| (\d+) samples/s", res.stderr).group(1)))
    return med(speeds)


def measure_mpi(bin_, train, valid, work, rounds=3):
    """Data-parallel training: `adaftr train` (default configuration, one epoch) in one process
    on 2 threads and on 1 thread, and under `mpirun -np 2` with one thread per rank; the
    three alternate, round after round. Returns the medians of the epoch line's samples/s
    and of the per-step communication times."""
    import re
    out = os.path.join(work, "mpi-bench.safetensors")
    args = ["train", "--train", train, "--valid", valid, "--epochs", "1", "--out", out]
    base = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    modes = {
        "1 process, 2 threads": ([bin_, *args], dict(base, RAYON_NUM_THREADS="2")),
        "1 process, 1 thread": ([bin_, *args], dict(base, RAYON_NUM_THREADS="1")),
        "2 ranks, 1 thread each": (["mpirun", "-np", "2", "--bind-to", "core", bin_, *args],
                                   dict(base, RAYON_NUM_THREADS="1")),
    }
    runs = {m: [] for m in modes}
    params = None
    for r in range(rounds):
        names = list(modes) if r % 2 == 0 else list(reversed(modes))
        for m in names:
            cmd, env = modes[m]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed:\n{res.stderr}")
            speed = re.search(r"\| (\d+) samples/s", res.stderr)
            comm = re.search(r"gradient sum ([\d.]+) ms, output gather ([\d.]+) ms, waiting for the slowest rank "
                             r"([\d.]+) ms", res.stderr)
            found = re.search(r"; (\d+) parameters", res.stderr)
            params = int(found.group(1)) if found else params
            runs[m].append({"samples_per_s": float(speed.group(1)),
                            **({"sum_ms": float(comm.group(1)), "gather_ms": float(comm.group(2)),
                                "wait_ms": float(comm.group(3))} if comm else {})})
    pick = {m: {k: med([x[k] for x in v if k in x]) for k in v[0]} for m, v in runs.items()}
    rows = sum(1 for _ in open(train)) - 1
    return {"modes": pick, "params": params, "rows": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--adaftr", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=8, help="training steps per measurement")
    ap.add_argument("--reps", type=int, default=20, help="inference batches per measurement")
    ap.add_argument("--calls", type=int, default=2000, help="single-instance calls per measurement")
    ap.add_argument("--ingest-file")
    ap.add_argument("--parquet-file", help="the ingest file converted to Parquet (adaftr convert)")
    ap.add_argument("--mpi-train", help="training CSV for data-parallel training under mpirun (needs the "
                    "binary built with the mpi feature)")
    ap.add_argument("--mpi-valid", help="its validation CSV")
    ap.add_argument("--stream-file", help="a large CSV for streamed training (peak memory); "
                    "--ingest-file is used for streamed against loaded samples/s")
    ap.add_argument("--browser", help="JSON written by the browser benchmark")
    ap.add_argument("--browser-train-csv", help="the CSV the browser benchmark trained on: trained natively on one "
                    "thread for the comparison (with --mpi-valid as its validation file)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    ap.add_argument("--compile-models", default=",".join(MODELS),
                    help="the models to run under torch.compile (comma-separated; compiling takes minutes each)")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--out", required=True)
    ap.add_argument("--json-out")
    a = ap.parse_args()

    torch_ref.configure_threads(THREADS)
    load_start = loadavg()
    d = a.dir
    refs = {m: torch_ref.Reference(f"{d}/{m}.safetensors", f"{d}/data.safetensors") for m in MODELS}
    parity = {}
    for m, ref in refs.items():
        parity[m] = ref.parity(load_file(f"{d}/parity-{m}.safetensors"), json.load(open(f"{d}/parity-{m}.json")))
        print(f"parity {m} (max |ours - torch|):", json.dumps(parity[m]), flush=True)
    # Timing models that compute different things would be meaningless: stop before the rounds.
    if any(torch_ref.parity_failures(p) for p in parity.values()):
        sys.exit("parity check failed: " + json.dumps({m: torch_ref.parity_failures(p) for m, p in parity.items()}))

    compiled, compile_errors, t0 = {}, {}, time.perf_counter()
    if not a.no_compile:
        for m in a.compile_models.split(","):
            if m not in MODELS:
                sys.exit(f"--compile-models: unknown model {m!r}; choose from {', '.join(MODELS)}")
            compiled[m], err = try_compiled(d, m, a.batch, parity[m])
            if err:
                compile_errors[m] = err
                print(f"torch.compile {m}: {err}", flush=True)
        compiled = {m: r for m, r in compiled.items() if r is not None}
    compile_s = time.perf_counter() - t0
    sides = ["eager"] + (["compiled"] if compiled else [])

    # The machine's f32 GEMM peak at the benchmark's shapes, measured here (both libraries),
    # so each throughput below can be stated as a fraction of it.
    work = {(w, m): torch_ref.gemm_work(refs[m].model, a.batch, w == "train") for w in ("train", "infer") for m in MODELS}
    shapes = sorted({s for sh, _ in work.values() for s in sh}, key=lambda s: -s[0] * s[1] * s[2])
    names = [f"{m}x{k}x{n}" for m, k, n in shapes]
    gemm = {"adaftr": ours(a.adaftr, "gemm", "--shapes", ",".join(names), "--reps", str(a.reps))["gflops"],
            "torch": {nm: torch_ref.gemm_gflops(sh, a.reps) for nm, sh in zip(names, shapes)}}
    peak = max(v for side in gemm.values() for v in side.values())
    print("GEMM GFLOP/s:", json.dumps(gemm), "peak", round(peak, 1), flush=True)

    b, steps = str(a.batch), str(a.steps)
    tasks = {}
    for m in TRAIN:
        tasks[("train", m)] = (
            lambda m=m: ours(a.adaftr, "train", "--model", m, "--dir", d, "--batch", b, "--steps", steps)["samples_per_s"],
            lambda r: r.train(a.batch, a.steps, 2)["samples_per_s"],
        )
    for m in INFER:
        tasks[("infer", m)] = (
            lambda m=m: ours(a.adaftr, "infer", "--model", m, "--dir", d, "--batch", b, "--reps", str(a.reps))["samples_per_s"],
            lambda r: r.infer(a.batch, a.reps)["samples_per_s"],
        )
    for m in LATENCY:
        tasks[("latency", m)] = (
            lambda m=m: ours(a.adaftr, "latency", "--model", m, "--dir", d, "--calls", str(a.calls))["median_us"],
            lambda r: r.latency(a.calls)["median_us"],
        )
    res = {k: {"ours": [], "eager": [], "compiled": []} for k in tasks}
    for r in range(a.rounds):
        for (what, m), (fo, ft) in tasks.items():
            runs = [("ours", fo), ("eager", lambda: ft(refs[m]))]
            if m in compiled:
                runs.append(("compiled", lambda: ft(compiled[m])))
            if r % 2:
                runs.reverse()
            for who, f in runs:
                res[(what, m)][who].append(f())
        print(f"round {r + 1}/{a.rounds}:",
              {f"{w}_{m}": [round(v[s][-1], 1) for s in ("ours", *sides) if v[s]] for (w, m), v in res.items()}, flush=True)

    ingest = None
    if a.ingest_file:
        runs = [ours(a.adaftr, "ingest", "--file", a.ingest_file) for _ in range(3)]
        ingest = {k: med([x[k] for x in runs if x.get(k) is not None]) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    parquet = None
    if a.parquet_file:
        runs = [ours(a.adaftr, "ingest", "--file", a.parquet_file) for _ in range(3)]
        parquet = {k: med([x[k] for x in runs if x.get(k) is not None]) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    browser = json.load(open(a.browser)) if a.browser and os.path.exists(a.browser) else None
    if browser and browser.get("train") and a.browser_train_csv:
        browser["train"]["native_rows_per_s"] = native_single_thread(a.adaftr, a.browser_train_csv, a.mpi_valid, a.dir)
    stream = measure_stream(a.adaftr, a.stream_file, a.ingest_file) if a.stream_file and a.ingest_file else None
    mpi = measure_mpi(a.adaftr, a.mpi_train, a.mpi_valid, a.dir) if a.mpi_train and a.mpi_valid else None

    kinds = {"train": ("Training", "samples/s", True), "infer": ("Batch inference", "samples/s", True),
             "latency": ("Single-instance latency", "µs (median)", False)}
    rows = []
    measured = {}
    for (what, m), r in res.items():
        kind, unit, higher = kinds[what]
        o = med(r["ours"])
        t = {s: med(r[s]) for s in sides if r[s]}
        best = max(t.values()) if higher else min(t.values())
        ratio = o / best if higher else best / o
        flops = work[(what, m)][1] if (what, m) in work else None
        of_peak = None if flops is None else (100 * o * flops / 1e9 / peak, 100 * best * flops / 1e9 / peak)
        rows.append((f"{kind}, {MODELS[m]}", unit, o, t, ratio, r, of_peak))
        measured[(what, m)] = (o, ratio)

    load_end = loadavg()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    L.append("# Benchmarks\n")
    L.append(f"Produced by `{a.command}` on {now}; commit {git_rev()}.\n")
    L.append(
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, shared with other work (numbers are noisy; "
        f"each row is the median of {a.rounds} rounds in which adaftr and PyTorch alternate; the 1-minute "
        f"load average was {load_start} at the start and {load_end} at the end of the comparison). "
        f"Both sides use {THREADS} threads (`RAYON_NUM_THREADS={THREADS}`; `torch.set_num_threads({THREADS})` and "
        f"one inter-op thread). PyTorch {torch.__version__} (CPU), float32, written as a PyTorch practitioner "
        f"would (`bench/torch_ref.py`: `nn.Linear` layers, InfoNCE as normalised rows scaled by 1/tau, one "
        f"matmul per direction and `F.cross_entropy`, `inference_mode` for inference, the fused CPU Adam)"
        + (", eager and under `torch.compile`" if compiled else ", eager") + ". "
        f"AliExpress-shaped generated data (16 categorical + 63 numeric columns), batch {a.batch}, Adam. "
        f"Both sides load the same initial weights from one adaftr bundle per model.\n"
    )
    L.append("Models (sizes of MODEL.md: d = 16, towers [64, 32], relatedness hidden 32):\n")
    L.append("- literal spec: `Config::literal_spec()` (`study/literal-spec.toml`): shared-bottom [256, 128], "
             "`joint` tau from a relatedness network on the towers, no projection heads;")
    L.append("- default configuration: `Config::default()`, what `adaftr train` trains: PLE (1 level, 2 shared + 1 "
             "task expert per task, experts [256, 128]), `readout` tau from a relatedness network on the embeddings "
             "(its transfer loss, no contrastive term, no projection heads);")
    L.append("- full AdaFTR loss: shared-bottom [256, 128], `transfer` tau from a relatedness network on the "
             "embeddings, projection heads [32, 32], the InfoNCE term;")
    L.append("- plain shared-bottom and plain PLE (1 level, 2 shared + 1 task expert per task, experts [256, 128]): "
             "`cl = none`.\n")
    L.append("## adaftr vs PyTorch (CPU)\n")
    head = "| measurement | unit | adaftr | PyTorch eager |" + (" PyTorch compiled |" if compiled else "")
    L.append(head + " ratio (adaftr / fastest PyTorch; >1 = adaftr faster) | % of GEMM peak (adaftr / PyTorch) |")
    L.append("| --- | --- | ---: | ---: |" + (" ---: |" if compiled else "") + " ---: | ---: |")
    for label, unit, o, t, ratio, _, of_peak in rows:
        fmt = (lambda x: f"{x:,.0f}") if unit.startswith("samples") else (lambda x: f"{x:,.1f}")
        cols = [fmt(t[s]) if s in t else "n/a" for s in sides]
        pk = "" if of_peak is None else f"{of_peak[0]:.0f}% / {of_peak[1]:.0f}%"
        L.append(f"| {label} | {unit} | {fmt(o)} | " + " | ".join(cols) + f" | {ratio:.2f}x | {pk} |")
    L.append("")
    L.append(f"GEMM peak: {peak:.1f} GFLOP/s, the fastest f32 product measured in this run at the benchmark's shapes "
             "(x W^T + b at batch rows, through adaftr's dense layer and through `F.linear`, median of "
             f"{a.reps} products each). A row's share of it is its samples/s times its GEMM FLOPs per sample "
             "(2 K N per dense layer the pass runs, plus the InfoNCE similarity, times 3 for training: "
             "`torch_ref.gemm_work`) over the peak; the rest of the time goes to everything that is not a "
             "matrix product. GFLOP/s per shape (adaftr / PyTorch):\n")
    L.append("| shape (M x K x N) | adaftr | PyTorch |")
    L.append("| --- | ---: | ---: |")
    for nm in names:
        L.append(f"| {nm} | {gemm['adaftr'][nm]:.1f} | {gemm['torch'][nm]:.1f} |")
    L.append("")
    L.append("## Targets\n")
    L.append("| target | measured | met |")
    L.append("| --- | ---: | --- |")
    for line in targets(measured, browser, ingest, stream):
        L.append(line)
    L.append("")
    L.append("Training steps include gathering the batch from the in-memory dataset, the forward pass, the loss, "
             "the backward pass, the Adam update and reading the loss values back. Batch inference includes "
             "building the input tensors and copying pCTR, pCVR, pCTCVR and tau back (PyTorch skips the projection "
             "heads, which only the loss reads). Single-instance latency is `Bundle::predict` on one instance (the "
             "browser's path) against a PyTorch forward on a 1-row tensor built from Python lists, under "
             "`inference_mode`; its ratio is PyTorch time / adaftr time.\n")
    if compiled:
        L.append(f"The compiled column is `torch.compile` (default mode, static shapes) of the forward pass and "
                 f"the loss (training) and of the inference forward; compiling took {compile_s:.0f} s "
                 f"before the rounds, not counted.\n")
    if compile_errors or a.no_compile:
        why = "; ".join(f"{m}: {e}" for m, e in compile_errors.items()) or "skipped (`--no-compile`)"
        L.append(f"`torch.compile`: {why}.\n")
    L.append("Per-round values (adaftr / " + " / ".join(f"PyTorch {s}" for s in sides) + "):\n")
    for label, unit, _, _, _, r, _ in rows:
        per = zip(r["ours"], *[r[s] if r[s] else [float("nan")] * len(r["ours"]) for s in sides])
        L.append(f"- {label}: " + "; ".join("/".join(f"{x:,.0f}" for x in xs) for xs in per))
    L.append("")
    L.append(f"## Parity (same weights, first batch of {a.batch})\n")
    qs = [q for q in dict.fromkeys(q for p in parity.values() for q in p)]
    L.append("| quantity | " + " | ".join(MODELS[m] for m in parity) + " |")
    L.append("| --- |" + " ---: |" * len(parity))
    for q in qs:
        cell = lambda v: f"`{v}`" if isinstance(v, str) else f"{v:.2e}"  # noqa: E731
        L.append(f"| {q} | " + " | ".join(cell(p[q]) if q in p else "" for p in parity.values()) + " |")
    failures = {m: torch_ref.parity_failures(p) for m, p in parity.items()}
    ok = not any(failures.values())
    L.append(f"\nMax absolute difference adaftr vs PyTorch (`loss_` rows: relative to max(|loss|, 1)). Every "
             f"quantity of every model within its tolerance (1e-5; `torch_ref.PARITY_TOLERANCE`): "
             f"**{'yes' if ok else 'NO: ' + '; '.join(f'{m}: ' + ', '.join(f) for m, f in failures.items() if f)}**. "
             "The `_after_step` rows compare the predictions after one Adam step "
             "from the same weights on the same batch (gradients and optimiser); `weights_after_step` is the largest "
             "difference of any weight after that step (Adam's first step is about lr = 1e-3 times the sign of the "
             "gradient, so a wrong or missing gradient shows as a difference near 1e-3) and the next row names its tensor.\n")
    if browser:
        L.append("## Browser (headless Chromium, wasm with simd128)\n")
        L.append("| measurement | value | target |")
        L.append("| --- | ---: | --- |")
        L.append(f"| Single-instance inference (median of {browser.get('samples', '?')} page measurements, each the mean of 50 calls) | {browser['single_ms']:.3f} ms | under {BROWSER_LATENCY_TARGET_MS:.3f} ms |")
        L.append(f"| What-if sweep of {browser.get('sweep_points', '?')} points, one batch (median of {browser.get('sweep_samples', '?')} updates) | {browser['sweep_ms']:.2f} ms | under 8 ms (64 points) |")
        if browser.get("edit_to_paint_ms") is not None:
            where = " in the panel worker" if browser.get("panels_off_thread") else ""
            L.append(f"| Sensitivity panel, every feature ({browser['sensitivity_points']} points, one batch{where}; median of {browser['sweep_samples']} edits) | {browser['sensitivity_ms']:.2f} ms | |")
            L.append(f"| Relatedness map ({browser['relmap_points']} points, one batch{where}; median) | {browser['relmap_ms']:.2f} ms | |")
            if browser.get("slider_work_ms") is not None:
                over = lambda k: f"; {browser[k]} of {browser['sweep_samples']} over a frame" if k in browser else ""
                L.append(f"| An edit's own frame, one slider moved: the prediction, the sweep, the render, style, layout and paint (median / max of {browser['sweep_samples']}) | {browser['slider_work_ms']:.1f} / {browser['slider_work_max_ms']:.1f} ms{over('slider_edits_over_a_frame')} | within one frame (16.7 ms at 60 Hz) |")
                L.append(f"| An edit's own frame, a random example (every field changes; median / max) | {browser['edit_work_ms']:.1f} / {browser['edit_work_max_ms']:.1f} ms{over('edits_over_a_frame')} | within one frame |")
                if browser.get("panels_off_thread") or browser.get("edit_late_work_ms"):
                    L.append(f"| The longest later frame of an edit's follow-ups (the worker's panels; after a random example, also the inputs off the screen), from each follow-up's start (slider; random example; median / max) | {browser['slider_late_work_ms']:.1f} / {browser['slider_late_work_max_ms']:.1f}; {browser['edit_late_work_ms']:.1f} / {browser['edit_late_work_max_ms']:.1f} ms | within one frame |")
                L.append(f"| The same edits to the first painted frame with everything in view, the wait for the display's beat included (slider; random example; medians) | {browser['slider_to_paint_ms']:.1f}; {browser['edit_to_paint_ms']:.1f} ms | |")
            else:
                L.append(f"| An edit (a random example) to the next painted frame, every panel recomputed (median / max) | {browser['edit_to_paint_ms']:.1f} / {browser['edit_to_paint_max_ms']:.1f} ms | 16.7 ms (one frame at 60 Hz) |")
        L.append(f"| wasm size, gzip -9 | {browser['wasm_gzip_bytes'] / 1024:,.0f} KiB ({browser['wasm_bytes'] / 1024:,.0f} KiB raw) | |")
        t = browser.get("train")
        if t:
            native = t.get("native_rows_per_s")
            share = f" ({t['rows_per_s'] / native:.0%} of native)" if native else ""
            L.append(f"| Training in the Train panel's worker, default configuration, batch 2,048: rows/s mid-epoch "
                     f"(one thread, wasm; the epoch's steps after its first, as `adaftr train` counts) | {t['rows_per_s']:,.0f}{share} | at least {BROWSER_TRAIN_TARGET:.0%} of native |")
            if native:
                L.append(f"| The same training natively, `adaftr train` on one thread (median of 3) | {native:,.0f} | |")
            L.append(f"| Worker wasm memory after one epoch on {t['csv_bytes'] / 1e6:,.0f} MB ({t.get('rows', 200000):,} "
                     f"rows) | {t['memory_bytes'] / 2**20:,.0f} MiB | |")
            L.append(f"| Reading and encoding that file in the worker | {t['read_seconds']:.1f} s | |")
            L.append(f"| Page input latency while the worker trains (a click on \"random example\" to the new prediction on the page, "
                     f"median / max of 20) | {t['input_latency_ms_median']:.1f} / {t['input_latency_ms_max']:.1f} ms | "
                     f"within a frame or two |")
            L.append(f"| Size the worker adds to the site (loaded only on Train), gzip -9 | "
                     f"{t['worker_wasm_gzip_bytes'] / 1024:,.0f} KiB ({t['worker_wasm_bytes'] / 1024:,.0f} KiB raw) | |")
        L.append("\nChromium coarsens `performance.now()` to 100 µs, so the single-instance number is the page's own "
                 "mean of 50 calls, and the batch times are read from the page's diagnostics line after each edit.\n")
        L.append(WHERE_BROWSER_TIME_GOES)
    if ingest:
        L.append("## CSV ingest\n")
        L.append(f"`load_train` (read, parse, fit vocabularies and normalisation, encode) of a generated AliExpress-shaped "
                 f"CSV of {ingest['rows']:,.0f} rows ({ingest['bytes'] / 1e6:,.0f} MB), median of 3 runs:\n")
        L.append("| measurement | value | target |")
        L.append("| --- | ---: | --- |")
        L.append(f"| rows/s | {ingest['rows_per_s']:,.0f} | |")
        L.append(f"| MB/s (wall clock) | {ingest['mb_per_s']:,.1f} | at least {INGEST_TARGET_MB_S:.0f} |")
        if ingest.get("mb_per_cpu_s") is not None:
            L.append(f"| MB per CPU-second (user + system; insensitive to other load) | {ingest['mb_per_cpu_s']:,.1f} | |")
        if ingest.get("peak_mib_per_m_rows") is not None:
            L.append(f"| peak memory per million rows (peak RSS minus RSS before) | {ingest['peak_mib_per_m_rows']:,.0f} MiB | |")
        L.append(f"| dataset in memory per million rows | {ingest['dataset_mib_per_m_rows']:,.0f} MiB | |")
        L.append(f"| CSV size per million rows | {ingest['file_mib_per_m_rows']:,.0f} MiB | |")
        L.append("")
    if ingest and parquet:
        L.append("### Parquet\n")
        L.append("The same rows converted by `adaftr convert` (Snappy, row groups of 65,536 rows) and loaded by "
                 "`load_train` through `ParquetText`, which reads Parquet as the CSV it stands for (so it loads to "
                 "exactly the CSV's dataset), median of 3 runs:\n")
        L.append("| measurement | CSV | Parquet |")
        L.append("| --- | ---: | ---: |")
        L.append(f"| file size | {ingest['bytes'] / 1e6:,.0f} MB | {parquet['bytes'] / 1e6:,.0f} MB |")
        L.append(f"| rows/s | {ingest['rows_per_s']:,.0f} | {parquet['rows_per_s']:,.0f} |")
        L.append(f"| MB/s of file read | {ingest['mb_per_s']:,.1f} | {parquet['mb_per_s']:,.1f} |")
        L.append("\nParquet's rows go through text: decoding is fast, but writing each float back in its shortest "
                 "decimal and parsing it again costs most of the time, so Parquet loads fewer rows per second than "
                 "CSV while reading far fewer bytes. A typed path from Parquet columns to the encoded dataset would "
                 "skip that round trip.\n")
    if stream:
        big, mem, st = stream["big"], stream["memory"], stream["stream"]
        L.append("## Streamed training\n")
        L.append(f"`adaftr train --stream`'s path (`bench stream`): a fit pass over the file (vocabularies and "
                 f"normalisation, no rows kept), then training steps of the default configuration (batch "
                 f"{big['batch']:,}) on rows read through the shuffle buffer, parsed on their own thread while the "
                 f"step runs. The large file is the {ingest['rows'] if ingest else 0:,.0f}-row ingest file repeated "
                 f"(same vocabularies, {big['bytes'] / 1e9:.1f} GB).\n")
        L.append("| measurement | value | target |")
        L.append("| --- | ---: | --- |")
        L.append(f"| peak RSS, {big['rows']:,} rows streamed, shuffle buffer of {big['shuffle_buffer']:,} rows | "
                 f"{big['peak_rss_mib']:,.0f} MiB | under {STREAM_RSS_TARGET_MIB:.0f} MiB |")
        L.append(f"| fit pass over {big['rows']:,} rows | {big['ready_seconds']:.1f} s "
                 f"({big['bytes'] / 1e6 / big['ready_seconds']:,.0f} MB/s) | |")
        L.append(f"| samples/s, {big['rows']:,} rows streamed | {big['samples_per_s']:,.0f} | |")
        L.append(f"| samples/s on {mem['rows']:,.0f} rows: loaded / streamed (buffer of 200,000 rows), median of 3 "
                 f"alternating runs | {mem['samples_per_s']:,.0f} / {st['samples_per_s']:,.0f} "
                 f"({stream['speed']:.0%}) | at least {STREAM_SPEED_TARGET:.0%} |")
        L.append(f"| peak RSS on {mem['rows']:,.0f} rows: loaded / streamed | {mem['peak_rss_mib']:,.0f} / "
                 f"{st['peak_rss_mib']:,.0f} MiB | |")
        L.append("")
    if mpi:
        md = mpi["modes"]
        two, one1, one2 = md["2 ranks, 1 thread each"], md["1 process, 1 thread"], md["1 process, 2 threads"]
        L.append("## Data-parallel training (MPI)\n")
        L.append(f"`adaftr train` of the default configuration (batch 2,048, {mpi['params'] or 0:,} parameters), one "
                 f"epoch over {mpi['rows']:,} rows of the ingest file, in one process and under `mpirun -np 2 "
                 f"--bind-to core` (the `mpi` feature; each rank runs its half of every batch on one thread). "
                 f"samples/s is the epoch line's (steps after the first, validation excluded); median of 3 "
                 f"alternating runs.\n")
        L.append("| configuration | samples/s | gradient sum per step | output gather per step | "
                 "waiting for the slowest rank per step |")
        L.append("| --- | ---: | ---: | ---: | ---: |")
        for name, m in md.items():
            comm = (f"{m['sum_ms']:.2f} ms | {m['gather_ms']:.2f} ms | {m['wait_ms']:.2f} ms" if "sum_ms" in m
                    else "| |")
            L.append(f"| {name} | {m['samples_per_s']:,.0f} | {comm} |")
        eff = two["samples_per_s"] / (2 * one1["samples_per_s"])
        L.append(f"\nScaling efficiency, 2 ranks against twice one thread: {eff:.0%}; against one process on both "
                 f"cores: {two['samples_per_s'] / one2['samples_per_s']:.2f}x. The gradient sum is a reduction of "
                 f"every parameter's gradient to rank 0 and a broadcast back ({4 * (mpi['params'] or 0) / 1e6:.2f} MB "
                 f"each way), over shared memory on this machine. This machine has 2 cores, so 2 ranks are all it "
                 f"can show: the exchange per step does not grow with the batch, and each rank's share of the "
                 f"compute shrinks as ranks are added.\n")
    L.append("## Reading these numbers\n")
    L.append("- On a machine shared with other work, both sides' thread pools lose a lot when a worker is "
             "descheduled (PyTorch's OpenMP workers spin more, and lose more), so absolute samples/s swing by 2-5x "
             "between rounds; compare the ratios, which come from interleaved rounds, and check the load average "
             "above. Run on an idle machine for absolute numbers.")
    L.append("- CSV ingest is single-threaded: its wall-clock MB/s falls with the machine's load, while MB per "
             "CPU-second does not.")
    L.append("- The default configuration's single-instance latency is mostly reading its weights once: PLE's four "
             "experts hold 1.6 MB, more than one core's L2 cache on many machines, so each prediction streams them "
             "from L3 (on this project's AMD EPYC a bare read of that much takes about 13.5 µs). The literal spec's "
             "weights (0.4 MB) stay in cache.\n")
    L.append("## What the CLI sets up (and a library user should too)\n")
    L.append("Profiling (`perf record` on `adaftr bench train` and `bench infer`) found process-level costs "
             "that had nothing to do with the model; `train-cli/src/runtime.rs` removes them at start-up, each "
             "overridable from the environment:")
    L.append("- glibc malloc handed every freed megabyte-sized buffer back to the kernel, so each step "
             "page-faulted its activations and gemm packing buffers in again (870,000 faults in 300 inference "
             "batches, a third of the time in the kernel). Fixed mmap and trim thresholds (`mallopt`) keep the "
             "memory; `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` override them. Those thresholds bind "
             "only glibc's main arena: rayon's workers get 64 MiB per-thread heaps that glibc unmaps as soon as "
             "they empty, which still cost PLE training about 11,000 page faults a step. One arena for all "
             "threads (`M_ARENA_MAX` = 1; `MALLOC_ARENA_MAX` overrides it) removes them.")
    L.append("- candle's element-wise pool (`candle-bp-*` threads) spin-waits between ops; beside rayon's gemm "
             "workers that is more busy threads than cores. `CANDLE_NUM_THREADS` defaults to 1 (element-wise ops "
             "are memory-bound; our fused kernels parallelise their own passes on rayon).")
    L.append("- Each command runs on a rayon worker, so a gemm is shared with the calling thread rather than "
             "handed to sleeping workers and waited for.\n")
    L.append("In the library (`core`), where profiling found the time going:")
    L.append("- The dense layers are one fused CPU op (gemm, then bias and ReLU in one pass; backward: two "
             "gemms, the ReLU mask and a column sum for the bias; `core/src/nn/linear.rs`); in-batch InfoNCE is "
             "one fused kernel (`core/src/nce/`).")
    L.append("- PLE's and MMoE's experts run as a bank (`core/src/nn/bank.rs`): the first layers of all experts "
             "that read the same input as one gemm over their weights side by side, deeper layers as one grouped "
             "op, and each gate's softmax mixture as one op reading the experts in place (`core/src/nn/mix.rs`). "
             "Built from candle's ops, the mixture alone (softmax, stack, product, strided sum) took a third of "
             "PLE's inference time.")
    L.append("- A loaded bundle's model (`AdaFtr::for_inference`) records no backward graph and holds its weights "
             "on 64-byte cache-line boundaries: at one instance per call each weight is streamed once, and with "
             "glibc's 16-byte alignment most vector loads straddled two lines. Few-row dense layers and expert banks "
             "read such weights in place with a matrix-vector kernel instead of going through candle's ops.")
    L.append("- The kernels that are not gemm (InfoNCE's exponentials, the single-instance matrix-vector "
             "product) are compiled three times, for AVX-512, AVX2 and baseline x86-64, and the widest the CPU "
             "has is chosen at run time (`cpu_kernel::vectorised_fn`): one binary, and the same bits from every "
             "version (no fused multiply-add forms, sums in a fixed order). gemm picks its own AVX-512 or AVX2 "
             "kernels at run time too.\n")
    L.append("## Reproduce\n")
    L.append("```sh\nbench/run.sh            # builds the release binary, sets up bench/.venv, runs everything, writes BENCHMARKS.md\n```\n")
    open(a.out, "w").write("\n".join(L) + "\n")
    if a.json_out:
        json.dump({"parity": parity, "results": {f"{w}_{m}": v for (w, m), v in res.items()}, "compile_errors": compile_errors,
                   "gemm_gflops": gemm, "gemm_peak": peak,
                   "ingest": ingest, "browser": browser}, open(a.json_out, "w"), indent=1)
    print("\n".join(L))
    if not ok:
        sys.exit("parity check failed")


if __name__ == "__main__":
    main()
