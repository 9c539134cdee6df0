"""Training parity: replays a run of `adaftr bench trace` in PyTorch and compares.

`adaftr bench trace` trains a fresh model for a fixed number of epochs over a batch order it
writes down, and records every step's loss terms and each epoch's validation predictions.
This script trains the PyTorch reference (bench/torch_ref.py) from the same initial weights
(the trace's untrained bundle) over the same batches with the same Adam settings, and
reports, side by side: the loss terms at chosen steps, and per epoch the validation AUCs
(CTR, CVR over clicks, CTCVR) and the distribution of tau (quantiles and the share of
instances within 1% of the range of either bound).

Two PyTorch runs calibrate what "equal up to float rounding" means for a trajectory of
hundreds of steps, in which rounding differences grow: the same replay in float64, and one
from weights perturbed by a relative 1e-6. If adaftr differs from PyTorch (float32) no more
than those runs differ from it, the implementations agree; a difference well beyond them is
a bug to find. `--init torch` adds a run from PyTorch's own default initialisation
(`nn.Linear`'s Kaiming-uniform with a = sqrt(5), N(0, 1) embeddings) over the same batches:
not a parity check, but what a PyTorch user gets from the same spec without adaftr's weights.

Usage:
  adaftr bench trace --train train.csv --valid valid.csv --model literal --seed 42 --epochs 6 --out-dir T
  bench/.venv/bin/python bench/train_parity.py --trace T [--runs f32,f64,perturb,torch-init] [--json-out R.json] [--md-out R.md]

With the f32 run and a calibration run (the default) it ends with a verdict, and exits with
an error when adaftr's trajectory is further from PyTorch float32 than rounding explains.
(bench/test_parity.py checks that a deliberately wrong PyTorch model fails it.)
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_ref  # noqa: E402

TERMS = ("ctr", "ctcvr", "cl", "transfer", "total")


def auc(score, label):
    """Exact ROC AUC with ties counted as half (as core/src/metrics.rs `auc`)."""
    label = label.astype(bool)
    n_pos = int(label.sum())
    n_neg = label.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    rank = (upper - (counts - 1) / 2.0)[inv]
    return float((rank[label].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def metrics(pred, click, conv, tau_min, tau_max):
    """Validation AUCs and the tau distribution of one epoch's predictions."""
    clicked = click > 0.5
    m = {
        "auc_ctr": auc(pred["pctr"].astype(np.float64), click),
        "auc_cvr": auc(pred["pcvr"][clicked].astype(np.float64), conv[clicked]),
        "auc_ctcvr": auc(pred["pctcvr"].astype(np.float64), conv),
    }
    m["score"] = (m["auc_ctr"] + m["auc_ctcvr"]) / 2.0
    tau = pred.get("tau")
    if tau is not None and tau.size:
        eps = 0.01 * (tau_max - tau_min)
        m["tau"] = {
            "mean": float(tau.mean()),
            **{f"p{q}": float(np.quantile(tau, q / 100)) for q in (5, 50, 95)},
            "at_min": float(np.mean(tau - tau_min <= eps)),
            "at_max": float(np.mean(tau_max - tau <= eps)),
        }
    return m


def best_epoch(epochs, patience):
    """The epoch `adaftr train` would keep: early stopping on the validation score
    (mean of CTR and CTCVR AUC) with the config's patience."""
    best, bad = None, 0
    for e in epochs:
        if best is None or e["score"] > best["score"]:
            best, bad = e, 0
        else:
            bad += 1
            if bad >= max(patience, 1):
                break
    return best


def torch_default_init(model, seed):
    """PyTorch's own initialisation of the same architecture: `nn.Linear.reset_parameters`
    and `nn.Embedding`'s N(0, 1)."""
    torch.manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            mod.reset_parameters()
    with torch.no_grad():
        model.embedding.table.normal_()


class Replay:
    def __init__(self, trace):
        self.dir = Path(trace)
        self.config, self.schema, self.weights = torch_ref.load_bundle(self.dir / "init.safetensors")
        load = lambda name: load_file(self.dir / name)  # noqa: E731
        tr, va = load("train.safetensors"), load("valid.safetensors")
        self.train = {k: torch.from_numpy(v.astype(np.int64) if k == "cat" else v) for k, v in tr.items()}
        self.valid = {k: torch.from_numpy(v.astype(np.int64) if k == "cat" else v) for k, v in va.items()}
        self.order = torch.from_numpy(load("order.safetensors")["order"].astype(np.int64))
        self.ours_steps = [json.loads(l) for l in (self.dir / "steps.jsonl").read_text().splitlines()]
        self.ours_evals = [json.loads(l) for l in (self.dir / "epochs.jsonl").read_text().splitlines()]
        self.ours_pred = load("valid_pred.safetensors")
        m = self.config["model"]
        self.tau_bounds = (m["tau_min"], m["tau_max"])

    def ours(self):
        """adaftr's trace, with the metrics recomputed here (the same code as PyTorch's)."""
        click, conv = self.valid["click"].numpy(), self.valid["conversion"].numpy()
        epochs = []
        for e in range(1, self.order.shape[0] + 1):
            pred = {k: self.ours_pred[f"e{e}.{k}"] for k in ("pctr", "pcvr", "pctcvr", "tau") if f"e{e}.{k}" in self.ours_pred}
            epochs.append({"epoch": e, **metrics(pred, click, conv, *self.tau_bounds), "pred": pred})
        return {"steps": [{k: s.get(k) for k in TERMS} for s in self.ours_steps], "epochs": epochs}

    def run(self, dtype=torch.float32, perturb=0.0, init="bundle", seed=0):
        model = torch_ref.AdaFtr(self.config, self.schema)
        model.load_bundle_weights(self.weights)
        if init == "torch":
            torch_default_init(model, seed)
        if perturb:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1 + perturb * torch.randn(p.shape, generator=g))
        model = model.to(dtype)
        opt = torch_ref.make_optimizer(model, self.config)
        bs = self.config["train"]["batch_size"]
        n = self.order.shape[1]
        steps = n // bs + int(n % bs >= 2)
        tr = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in self.train.items()}
        va = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in self.valid.items()}
        out_steps, out_epochs, k = [], [], 0
        for e in range(self.order.shape[0]):
            model.train()
            for s in range(steps):
                idx = self.order[e, s * bs:min((s + 1) * bs, n)]
                out = model(tr["cat"][idx], tr["num"][idx])
                terms = torch_ref.compute_loss(model, out, tr["click"][idx], tr["conversion"][idx],
                                               torch_ref.cl_scale(self.config, k))
                opt.zero_grad(set_to_none=True)
                terms["total"].backward()
                opt.step()
                k += 1
                out_steps.append({t: (terms[t].item() if t in terms else None) for t in TERMS})
            model.eval()
            pred = {"pctr": [], "pcvr": [], "pctcvr": [], "tau": []}
            with torch.inference_mode():
                for start in range(0, va["cat"].shape[0], 4096):
                    o = model(va["cat"][start:start + 4096], va["num"][start:start + 4096], need_z=False)
                    for key in pred:
                        if o[key] is not None:
                            pred[key].append(o[key].float().numpy())
            pred = {key: np.concatenate(v) for key, v in pred.items() if v}
            click, conv = self.valid["click"].numpy(), self.valid["conversion"].numpy()
            out_epochs.append({"epoch": e + 1, **metrics(pred, click, conv, *self.tau_bounds), "pred": pred})
        return {"steps": out_steps, "epochs": out_epochs}


def step_marks(n):
    marks = [1, 2, 5, 10, 20, 50, 100]
    marks += list(range(200, n + 1, 100))
    return [m for m in marks if m <= n] + ([n] if n not in marks else [])


def fmt(x, nd=4):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def divergence(a, b, term):
    """Per-step |a - b| of one loss term, relative to |a|."""
    return [abs(x[term] - y[term]) / max(abs(x[term]), 1e-12)
            for x, y in zip(a["steps"], b["steps"]) if x.get(term) is not None and y.get(term) is not None]


def windows(d):
    """Steps 1-10, 11-100 and 101-end of a per-step series (empty windows dropped)."""
    return [w for w in (d[:10], d[10:100], d[100:]) if w]


def pred_diff(a, b, e, k):
    pa, pb = a["epochs"][e]["pred"], b["epochs"][e]["pred"]
    return float(np.abs(pa[k].astype(np.float64) - pb[k]).max()) if k in pa and k in pb else None


# adaftr may differ from PyTorch float32 by this many times what the calibration runs (float64,
# perturbed weights) differ from it, plus a floor for runs where those differ by exactly 0.
SLACK, FLOOR_LOSS, FLOOR_PRED = 10.0, 1e-6, 1e-5


def verdict(runs):
    """Why adaftr's run is not the PyTorch float32 run up to float rounding (empty if it is):
    per loss term and window of steps, the median relative difference must stay within SLACK
    times the larger of the calibration runs' (plus FLOOR_LOSS), and each epoch's validation
    predictions within SLACK times the perturbed run's distance (plus FLOOR_PRED). Needs the
    f32 run and at least one of f64 and perturb."""
    calib = [r for r in ("f64", "perturb") if r in runs]
    if "f32" not in runs or not calib:
        return None
    bad = []
    ours, f32 = runs["adaftr"], runs["f32"]
    for t in TERMS:
        mine = windows(divergence(f32, ours, t))
        ref = [windows(divergence(f32, runs[r], t)) for r in calib]
        for w, d in enumerate(mine):
            limit = SLACK * max(float(np.median(c[w])) for c in ref if len(c) > w) + FLOOR_LOSS
            if not float(np.median(d)) <= limit:
                bad.append(f"{t}, step window {w + 1}: median relative difference {np.median(d):.1e} > {limit:.1e}")
    for e in range(len(ours["epochs"])):
        for k in ("pctr", "pcvr", "tau"):
            mine = pred_diff(ours, f32, e, k)
            if mine is None:
                continue
            spread = [pred_diff(runs[r], f32, e, k) for r in calib]
            limit = SLACK * max([x for x in spread if x is not None] + [0.0]) + FLOOR_PRED
            if not mine <= limit:
                bad.append(f"epoch {e + 1} {k}: max difference {mine:.1e} > {limit:.1e}")
    return bad


def report(runs, config, trace_dir, elapsed):
    names = list(runs)
    L = []
    cfg = config["train"]
    L.append(f"Trace `{trace_dir}`: {config['loss']['cl']} mode, backbone {config['model']['backbone']}, "
             f"relatedness input {config['model']['relatedness_input']}, projection {config['model']['projection'] or 'none'}; "
             f"batch {cfg['batch_size']}, Adam lr {cfg['lr']}, betas ({cfg['adam_beta1']}, {cfg['adam_beta2']}), "
             f"eps {cfg['adam_eps']}, seed {cfg['seed']}. PyTorch {torch.__version__}; replays took {elapsed:.0f} s.\n")
    n = len(runs["adaftr"]["steps"])
    terms = [t for t in TERMS if runs["adaftr"]["steps"][0].get(t) is not None]
    L.append("Loss terms at selected steps (" + ", ".join(f"`{r}`" for r in names) + "):\n")
    L.append("| step | " + " | ".join(f"{t}: {' / '.join(names)}" for t in terms) + " |")
    L.append("| ---: |" + " --- |" * len(terms))
    for s in step_marks(n):
        cells = [" / ".join(fmt(runs[r]["steps"][s - 1].get(t)) for r in names) for t in terms]
        L.append(f"| {s} | " + " | ".join(cells) + " |")
    L.append("")
    if "f32" in runs:
        L.append("Median relative difference of each loss term from PyTorch float32, over steps 1-10, 11-100 and "
                 "101-end:\n")
        L.append("| run | " + " | ".join(terms) + " |")
        L.append("| --- |" + " --- |" * len(terms))
        for r in names:
            if r == "f32" or r == "torch-init":
                continue
            cells = []
            for t in terms:
                d = divergence(runs["f32"], runs[r], t)
                parts = [d[:10], d[10:100], d[100:]]
                cells.append(" / ".join(f"{np.median(p):.1e}" if p else "-" for p in parts))
            L.append(f"| {r} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("Validation per epoch (AUC CTR / CVR / CTCVR; tau p5 / p50 / p95; share of instances within 1% of "
             "tau_min / tau_max):\n")
    L.append("| epoch | run | AUC CTR | AUC CVR | AUC CTCVR | tau p5 / p50 / p95 | at tau_min / tau_max |")
    L.append("| ---: | --- | ---: | ---: | ---: | --- | --- |")
    for e in range(len(runs["adaftr"]["epochs"])):
        for r in names:
            m = runs[r]["epochs"][e]
            t = m.get("tau")
            tau = f"{t['p5']:.3f} / {t['p50']:.3f} / {t['p95']:.3f}" if t else "-"
            bounds = f"{100 * t['at_min']:.0f}% / {100 * t['at_max']:.0f}%" if t else "-"
            L.append(f"| {e + 1} | {r} | {fmt(m['auc_ctr'])} | {fmt(m['auc_cvr'])} | {fmt(m['auc_ctcvr'])} | {tau} | {bounds} |")
    L.append("")
    patience = cfg["patience"]
    L.append(f"Best epoch under early stopping (patience {patience}, score = mean of CTR and CTCVR AUC):\n")
    L.append("| run | best epoch | AUC CTR | AUC CVR | AUC CTCVR |")
    L.append("| --- | ---: | ---: | ---: | ---: |")
    for r in names:
        b = best_epoch(runs[r]["epochs"], patience)
        L.append(f"| {r} | {b['epoch']} | {fmt(b['auc_ctr'])} | {fmt(b['auc_cvr'])} | {fmt(b['auc_ctcvr'])} |")
    L.append("")
    if "f32" in runs:
        L.append("Validation predictions, max |adaftr - PyTorch float32| per epoch (pCTR, pCVR, tau): " + "; ".join(
            f"{e + 1}: " + ", ".join(
                f"{np.abs(runs['adaftr']['epochs'][e]['pred'][k] - runs['f32']['epochs'][e]['pred'][k]).max():.1e}"
                for k in ("pctr", "pcvr", "tau") if k in runs["adaftr"]["epochs"][e]["pred"])
            for e in range(len(runs["adaftr"]["epochs"]))) + "\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", required=True, help="the --out-dir of `adaftr bench trace`")
    ap.add_argument("--runs", default="f32,f64,perturb",
                    help="PyTorch runs: f32 (float32 replay), f64 (float64), perturb (weights x (1 + 1e-6 N(0,1))), "
                         "torch-init (PyTorch's default initialisation)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    ap.add_argument("--md-out")
    a = ap.parse_args()
    torch_ref.configure_threads(a.threads)
    rep = Replay(a.trace)
    seed = rep.config["train"]["seed"]
    kinds = {
        "f32": dict(),
        "f64": dict(dtype=torch.float64),
        "perturb": dict(perturb=1e-6, seed=seed),
        "torch-init": dict(init="torch", seed=seed),
    }
    runs = {"adaftr": rep.ours()}
    t0 = time.perf_counter()
    for r in a.runs.split(","):
        if r not in kinds:
            sys.exit(f"unknown run {r!r}; choose from {', '.join(kinds)}")
        print(f"replaying: {r}", file=sys.stderr, flush=True)
        runs[r] = rep.run(**kinds[r])
    md = report(runs, rep.config, a.trace, time.perf_counter() - t0)
    bad = verdict(runs)
    if bad is not None:
        md += ("\nVerdict: adaftr and PyTorch float32 agree up to float rounding (within "
               f"{SLACK:g}x the calibration runs' differences): **{'yes' if not bad else 'NO'}**.\n")
        md += "".join(f"- {b}\n" for b in bad)
    print(md)
    if a.md_out:
        Path(a.md_out).write_text(md + "\n")
    if a.json_out:
        slim = {r: {"steps": v["steps"], "epochs": [{k: x for k, x in e.items() if k != "pred"} for e in v["epochs"]]}
                for r, v in runs.items()}
        json.dump({"config": rep.config, "runs": slim, "verdict": bad}, open(a.json_out, "w"), indent=1)
    if bad:
        sys.exit("training parity failed")


if __name__ == "__main__":
    main()
