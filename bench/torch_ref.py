"""PyTorch reference of the AdaFTR model and loss, for speed comparison and parity.

It is written here only to compare against, the way a PyTorch practitioner would write the
same model: it loads the weights, config and schema from an adaftr model bundle (a
.safetensors file) and implements exactly what core/ computes for the configurations the
benchmark uses:

- backbones `shared-bottom` and `ple`, towers, heads;
- relatedness modes `joint` (MODEL.md's literal spec), `transfer`, `readout` (the default:
  tau learned as in `transfer`, no contrastive term), `fixed` and `none` (the plain
  backbone); the relatedness network on the towers or on the embeddings;
  optional projection heads;
- L = L_ctr + L_ctcvr [+ L_cvr_click] + lambda * ramp * L_cl [+ beta * mean((r - r0)^2)]
  [+ w * L_transfer], with in-batch cosine or dot InfoNCE.

Anything else (other backbones, `meta`, sampled negatives, dropout) raises instead of
silently differing, and the bundle's tensors are loaded with `load_state_dict(strict=True)`,
so a tensor this reference does not implement is an error too.

InfoNCE is written the usual way: L2-normalise both sides, scale the query rows by 1/tau
(one temperature per instance), one matmul per direction and `F.cross_entropy` against the
diagonal.
"""

import json
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file


def configure_threads(n):
    """Intra-op threads as many as adaftr's (`RAYON_NUM_THREADS`), and one inter-op thread:
    the model is one chain of ops, so a second pool would only compete for the cores. Must
    run before the first parallel op (PyTorch fixes the inter-op pool at first use)."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already fixed by an earlier parallel op in this process


def load_bundle(path):
    with safe_open(path, "np") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != "adaftr-bundle":
        raise ValueError(f"{path} is not an adaftr bundle")
    return json.loads(meta["config"]), json.loads(meta["schema"]), weights


class Mlp(nn.ModuleList):
    """Linear + ReLU per layer (core/src/nn/mlp.rs); parameters `0.weight`, `0.bias`, ..."""

    def __init__(self, in_dim, widths):
        dims = [in_dim] + list(widths)
        super().__init__(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x):
        for layer in self:
            x = F.relu(layer(x))
        return x


class Projection(nn.ModuleList):
    """Linear layers with ReLU between them, the last linear (core/src/model/projection.rs)."""

    def __init__(self, in_dim, widths):
        dims = [in_dim] + list(widths)
        super().__init__(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self):
            x = layer(x)
            if i + 1 < len(self):
                x = F.relu(x)
        return x


class Embeddings(nn.Module):
    """One packed table for every categorical field plus a linear map of the numerics
    (core/src/model/embedding.rs): x = [e_1 ; ... ; e_F ; W num + b]."""

    def __init__(self, cards, n_num, d):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(sum(cards), d))
        self.numeric = nn.Linear(n_num, d)
        self.register_buffer("offsets", torch.tensor(np.cumsum([0] + cards[:-1]), dtype=torch.long), persistent=False)
        self.out_dim = (len(cards) + 1) * d

    def forward(self, cat, num):
        e = F.embedding(cat + self.offsets, self.table).flatten(1)
        return torch.cat([e, self.numeric(num)], 1)


def mix(gate, x, experts):
    """Softmax gate over the experts' outputs (core/src/model/backbone/gate.rs)."""
    w = torch.softmax(gate(x), -1)
    return torch.einsum("ne,neh->nh", w, torch.stack(experts, 1))


class PleLevel(nn.Module):
    def __init__(self, d, widths, shared, task, last):
        super().__init__()
        self.n = (shared, task)
        for kind, count in (("shared", shared), ("ctr", task), ("cvr", task)):
            for e in range(count):
                self.add_module(f"{kind}{e}", Mlp(d, widths))
        self.gate_ctr = nn.Linear(d, task + shared)
        self.gate_cvr = nn.Linear(d, task + shared)
        self.gate_shared = None if last or shared == 0 else nn.Linear(d, 2 * task + shared)

    def experts(self, kind, x):
        count = self.n[0] if kind == "shared" else self.n[1]
        return [getattr(self, f"{kind}{e}")(x) for e in range(count)]

    def forward(self, in_c, in_v, in_s):
        shared = self.experts("shared", in_s)
        ctr, cvr = self.experts("ctr", in_c), self.experts("cvr", in_v)
        next_c = mix(self.gate_ctr, in_c, ctr + shared)
        next_v = mix(self.gate_cvr, in_v, cvr + shared)
        next_s = mix(self.gate_shared, in_s, ctr + cvr + shared) if self.gate_shared is not None else in_s
        return next_c, next_v, next_s


class Ple(nn.Module):
    """Progressive layered extraction (core/src/model/backbone/ple.rs)."""

    def __init__(self, d, m):
        super().__init__()
        self.levels = []
        for l in range(m["ple_levels"]):
            level = PleLevel(d, m["bottom"], m["ple_shared_experts"], m["ple_task_experts"], l + 1 == m["ple_levels"])
            self.add_module(f"level{l}", level)
            self.levels.append(level)
            d = m["bottom"][-1]
        self.out_dim = d

    def forward(self, x):
        in_c = in_v = in_s = x
        for level in self.levels:
            in_c, in_v, in_s = level(in_c, in_v, in_s)
        return in_c, in_v


class SharedBottom(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.bottom = Mlp(d, m["bottom"])
        self.out_dim = m["bottom"][-1] if m["bottom"] else d

    def forward(self, x):
        b = self.bottom(x)
        return b, b


class Relatedness(nn.Module):
    """tau = tau_min + (tau_max - tau_min) sigmoid(r), r from a one-hidden-layer MLP."""

    def __init__(self, in_dim, hidden):
        super().__init__()
        self.hidden = Mlp(in_dim, [hidden])
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(self.hidden(x)).squeeze(1)


class AdaFtr(nn.Module):
    """Parameter names are the bundle's tensor names, so a bundle loads with `load_state_dict`."""

    def __init__(self, config, schema):
        super().__init__()
        m, loss = config["model"], config["loss"]
        if loss["cl"] not in ("joint", "transfer", "readout", "fixed", "none"):
            raise NotImplementedError(f"cl {loss['cl']}")
        if loss["cl"] not in ("none", "readout") and loss["negatives"] != "in-batch":
            raise NotImplementedError("sampled negatives")
        if m.get("dropout", 0.0) != 0.0:
            raise NotImplementedError("dropout")
        self.m, self.loss_cfg, self.cl = m, loss, loss["cl"]
        # Whether a contrastive term compares the two representations (`ModelHooks::aligns`):
        # `readout` learns tau as `transfer` does, with no term and no projection heads.
        self.aligns = self.cl not in ("none", "readout")
        # Modes whose tau learns from the transfer loss alone (core/src/relatedness/transfer.rs).
        self.tau_from_transfer = self.cl in ("transfer", "readout")
        cards = [len(f["vocab"]) + 1 for f in schema["categorical"]]
        self.embedding = Embeddings(cards, len(schema["numeric"]), m["embedding_dim"])
        x_dim = self.embedding.out_dim
        backbones = {"shared-bottom": SharedBottom, "ple": Ple}
        if m["backbone"] not in backbones:
            raise NotImplementedError(f"backbone {m['backbone']}")
        self.backbone = backbones[m["backbone"]](x_dim, m)
        self.tower_ctr = Mlp(self.backbone.out_dim, m["tower"])
        self.tower_cvr = Mlp(self.backbone.out_dim, m["tower"])
        k = m["tower"][-1]
        self.head_ctr = nn.Linear(k, 1)
        self.head_cvr = nn.Linear(k, 1)
        self.relatedness = None
        if self.cl in ("joint", "transfer", "readout"):
            towers = m["relatedness_input"] == "towers"
            self.relatedness = Relatedness(3 * k if towers else x_dim, m["relatedness_hidden"])
        self.detach_tau_input = m.get("relatedness_detach_input", False) or self.tau_from_transfer
        self.projection_ctr = self.projection_cvr = None
        if self.aligns and m.get("projection"):
            self.projection_ctr = Projection(k, m["projection"])
            self.projection_cvr = Projection(k, m["projection"])

    def load_bundle_weights(self, weights):
        self.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, strict=True)

    def forward(self, cat, num, need_z=True):
        """Everything one pass produces; `need_z=False` (inference) skips the projection heads,
        which only the contrastive loss reads."""
        x = self.embedding(cat, num)
        in_c, in_v = self.backbone(x)
        h_c, h_v = self.tower_ctr(in_c), self.tower_cvr(in_v)
        logit_c = self.head_ctr(h_c).squeeze(1)
        logit_v = self.head_cvr(h_v).squeeze(1)
        pctr, pcvr = torch.sigmoid(logit_c), torch.sigmoid(logit_v)
        out = {"logit_ctr": logit_c, "logit_cvr": logit_v, "pctr": pctr, "pcvr": pcvr, "pctcvr": pctr * pcvr,
               "tau": None, "tau_logit": None}
        if self.cl == "fixed":
            out["tau"] = torch.full_like(pctr, self.loss_cfg["fixed_tau"])
        elif self.relatedness is not None:
            inp = torch.cat([h_c, h_v, h_c * h_v], 1) if self.m["relatedness_input"] == "towers" else x
            r = self.relatedness(inp.detach() if self.detach_tau_input else inp)
            lo, hi = self.m["tau_min"], self.m["tau_max"]
            out["tau"], out["tau_logit"] = torch.sigmoid(r) * (hi - lo) + lo, r
        if need_z and self.projection_ctr is not None:
            out["z_ctr"], out["z_cvr"] = self.projection_ctr(h_c), self.projection_cvr(h_v)
        else:
            out["z_ctr"], out["z_cvr"] = h_c, h_v
        return out


def product_bce(a, b, y):
    """BCE of p = sigmoid(a) sigmoid(b) against y, in log space: log p = logsigmoid(a) +
    logsigmoid(b), log(1 - p) = log1mexp(log p)."""
    log_p = F.logsigmoid(a) + F.logsigmoid(b)
    log_1mp = torch.where(log_p > -0.6931471805599453, torch.log(-torch.expm1(log_p)), torch.log1p(-torch.exp(log_p)))
    return -(y * log_p + (1 - y) * log_1mp).mean()


def info_nce(z_ctr, z_cvr, tau, similarity, symmetric):
    """In-batch InfoNCE with one temperature per query row: the rows of the query side are
    scaled by 1/tau before the matmul, and the positives are the diagonal."""
    if similarity == "cosine":
        z_ctr, z_cvr = F.normalize(z_ctr, dim=1), F.normalize(z_cvr, dim=1)
    inv_tau = tau.reciprocal().unsqueeze(1)
    target = torch.arange(z_ctr.shape[0])
    rows = F.cross_entropy((z_ctr * inv_tau) @ z_cvr.t(), target)
    if not symmetric:
        return rows
    # Column i of the similarity matrix, at instance i's temperature.
    return 0.5 * (rows + F.cross_entropy((z_cvr * inv_tau) @ z_ctr.t(), target))


def transfer_loss(logit_ctr, logit_cvr, r, click, conv, kappa):
    """`transfer` mode's auxiliary loss (core/src/relatedness/transfer.rs; `aux` in adaftr's step losses): BCE over clicked
    rows of l_cvr - kappa r s, s the batch-standardised click logit; only r learns."""
    c = logit_ctr.detach()
    centred = c - c.mean()
    s = centred / torch.sqrt(centred.square().mean() + 1e-6)
    per = F.binary_cross_entropy_with_logits(logit_cvr.detach() - kappa * r * s, conv, reduction="none")
    return (per * click).sum() / click.sum().clamp(min=1.0)


def tau_logit_of(m, tau):
    p = min(max((tau - m["tau_min"]) / (m["tau_max"] - m["tau_min"]), 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def cl_scale(config, step):
    """The warm-up multiplier of lambda at optimiser step `step` (0-based)."""
    w = config["loss"].get("cl_warmup_steps", 0)
    return 1.0 if w == 0 else min(step / w, 1.0)


def compute_loss(model, out, click, conv, scale=1.0):
    """The loss terms of core/src/train/objective.rs `compute`, lambda multiplied by `scale` (the
    warm-up ramp, `cl_scale`)."""
    loss = model.loss_cfg
    ctr = F.binary_cross_entropy_with_logits(out["logit_ctr"], click)
    ctcvr = product_bce(out["logit_ctr"], out["logit_cvr"], conv)
    total = ctr + ctcvr
    terms = {"ctr": ctr, "ctcvr": ctcvr}
    if loss["cvr_click_loss"]:
        per = F.binary_cross_entropy_with_logits(out["logit_cvr"], conv, reduction="none")
        terms["cvr_click"] = (per * click).sum() / click.sum().clamp(min=1.0)
        total = total + terms["cvr_click"]
    tau, r = out["tau"], out["tau_logit"]
    if model.aligns and tau is not None:
        lam = loss["lambda"] * scale
        if model.tau_from_transfer:
            tau = tau.detach()  # learned from the transfer loss below, not from this one
        terms["cl"] = info_nce(out["z_ctr"], out["z_cvr"], tau, loss["similarity"], loss["symmetric"])
        if lam > 0:
            total = total + lam * terms["cl"]
        if r is not None and loss.get("tau_prior_weight", 0.0) > 0:
            terms["tau_prior"] = (r - tau_logit_of(model.m, loss["tau_prior_mean"])).square().mean()
            total = total + loss["tau_prior_weight"] * terms["tau_prior"]
    if model.tau_from_transfer and r is not None:
        terms["aux"] = transfer_loss(out["logit_ctr"], out["logit_cvr"], r, click, conv, loss["transfer_scale"])
        if loss["transfer_weight"] > 0:
            total = total + loss["transfer_weight"] * terms["aux"]
    terms["total"] = total
    return terms


def make_optimizer(model, config):
    """Adam (AdamW with decoupled weight decay when it is set), the relatedness network in its
    own group at lr * tau_lr_scale; the single-tensor fused CPU kernel where PyTorch has it."""
    t = config["train"]
    rel = [p for n, p in model.named_parameters() if n.startswith("relatedness.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("relatedness.")]
    groups = [{"params": rest, "lr": t["lr"]}]
    if rel:
        groups.append({"params": rel, "lr": t["lr"] * t.get("tau_lr_scale", 1.0)})
    kw = dict(betas=(t["adam_beta1"], t["adam_beta2"]), eps=t["adam_eps"], weight_decay=t["weight_decay"])
    cls = torch.optim.AdamW if t["weight_decay"] > 0 else torch.optim.Adam
    try:
        return cls(groups, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):
        return cls(groups, foreach=True, **kw)


def first_batch_parity(ref, ours_pred, ours_losses):
    """Max |ours - PyTorch| of the predictions and loss terms on the first batch, and of the
    predictions after one Adam step on it, from the same weights."""
    b = int(ours_losses["batch"])
    cat, num, click, conv = ref.batch(0, b)
    ref.reset()
    model = ref.model
    model.train()
    out = model(cat, num)
    res = {}
    for k in ("pctr", "pcvr", "pctcvr", "tau"):
        if out[k] is not None and k in ours_pred:
            res[k] = float(np.abs(out[k].detach().numpy() - ours_pred[k]).max())
    terms = compute_loss(model, out, click, conv, cl_scale(ref.config, 0))
    for k, v in terms.items():
        if ours_losses.get(k) is not None:
            res["loss_" + k] = abs(v.item() - ours_losses[k]) / max(abs(ours_losses[k]), 1.0)
    missing = [k for k in terms if ours_losses.get(k) is None]
    if missing:
        raise ValueError(f"loss terms adaftr did not report: {missing}")
    opt = make_optimizer(model, ref.config)
    opt.zero_grad(set_to_none=True)
    terms["total"].backward()
    opt.step()
    with torch.inference_mode():
        after = model(cat, num, need_z=False)
    for k in ("pctr", "pcvr"):
        res[k + "_after_step"] = float(np.abs(after[k].numpy() - ours_pred[k + "_after_step"]).max())
    diffs = {n: float(np.abs(p.detach().numpy() - ours_pred["after_step." + n]).max())
             for n, p in model.named_parameters() if "after_step." + n in ours_pred}
    if diffs:
        worst = max(diffs, key=diffs.get)
        res["weights_after_step"] = diffs[worst]
        res["weights_after_step_worst"] = worst
    ref.reset()
    return res


def gemm_work(model, batch, training):
    """The matrix products of one pass at `batch` rows: a list of (M, K, N) shapes, one per
    `nn.Linear` the pass runs (inference skips the projection heads) and, with a contrastive
    loss in training, the (batch, k, batch) InfoNCE similarity; and the GEMM FLOPs per
    sample, 2 M K N / batch summed, times 3 in training (the backward pass is two products
    per forward product: the input's and the weight's gradients)."""
    shapes = [(batch, m.in_features, m.out_features) for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and (training or not name.startswith("projection_"))]
    if training and model.cl != "none":
        k = (model.m["projection"] or model.m["tower"])[-1]
        shapes.append((batch, k, batch))
    flops = sum(2 * a * b * c for a, b, c in shapes) / batch
    return shapes, flops * (3 if training else 1)


def gemm_gflops(shape, reps):
    """GFLOP/s of F.linear (x W^T + b, what `nn.Linear` runs) at one (M, K, N) shape: the
    median of `reps` products after two untimed ones."""
    m, k, n = shape
    x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
    times = []
    with torch.inference_mode():
        for i in range(2 + reps):
            t0 = time.perf_counter()
            F.linear(x, w, b)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return 2.0 * m * k * n / float(np.median(times)) / 1e9


# How far adaftr and this reference may differ on the first batch (`first_batch_parity`):
# float32 rounding is ~1e-7 here, a modelling difference (a term, a detach, the side tau
# scales) is orders of magnitude more. Loss terms are compared relative to max(|value|, 1).
# After one Adam step each weight has moved by about lr = 1e-3 times the sign of its
# gradient, so a wrong or missing gradient shows as a weight difference near 1e-3.
PARITY_TOLERANCE = {
    "pctr": 1e-5, "pcvr": 1e-5, "pctcvr": 1e-5, "tau": 1e-5, "loss_": 1e-5,
    "pctr_after_step": 1e-5, "pcvr_after_step": 1e-5, "weights_after_step": 1e-5,
    "compiled_pctr": 1e-5, "compiled_loss_total": 1e-5,
}


def parity_failures(res):
    """The entries of a `first_batch_parity` result beyond `PARITY_TOLERANCE`, as
    "name = value > tolerance" strings (empty when the two implementations agree). A check
    that is missing counts as a failure: the predictions, the total loss and the
    after-step comparisons must all be there."""
    bad = [f"{k} missing" for k in ("pctr", "pcvr", "pctcvr", "loss_total", "pctr_after_step", "weights_after_step")
           if k not in res]
    for k, v in res.items():
        if isinstance(v, str):
            continue
        tol = PARITY_TOLERANCE.get(k, PARITY_TOLERANCE["loss_"] if k.startswith("loss_") else None)
        if tol is None:
            bad.append(f"{k} has no tolerance")
        elif not v <= tol:  # NaN fails too
            where = f" ({res['weights_after_step_worst']})" if k == "weights_after_step" else ""
            bad.append(f"{k} = {v:.2e} > {tol:.0e}{where}")
    return bad


class Reference:
    """A model loaded from a bundle plus the prepared data of `adaftr bench prepare`, with
    the measurements of `adaftr bench train|infer|latency`. `compiled` wraps the training
    step's forward and loss, and the inference forward, in `torch.compile`."""

    def __init__(self, bundle_path, data_path, compiled=False):
        self.config, self.schema, weights = load_bundle(bundle_path)
        self.model = AdaFtr(self.config, self.schema)
        self.model.load_bundle_weights(weights)
        self.weights = weights
        d = load_file(data_path)
        self.cat = torch.from_numpy(d["cat"].astype(np.int64))
        self.num = torch.from_numpy(d["num"])
        self.click = torch.from_numpy(d["click"])
        self.conv = torch.from_numpy(d["conversion"])
        model = self.model

        def step_loss(cat, num, click, conv, scale):
            terms = compute_loss(model, model(cat, num), click, conv, scale)
            return terms["total"], torch.stack([v.detach() for v in terms.values()])

        def predict(cat, num):
            out = model(cat, num, need_z=False)
            return [out[k] for k in ("pctr", "pcvr", "pctcvr", "tau") if out[k] is not None]

        self.step_loss, self.predict = step_loss, predict
        if compiled:
            self.step_loss = torch.compile(step_loss, dynamic=False)
            self.predict = torch.compile(predict, dynamic=False)

    def reset(self):
        self.model.load_bundle_weights(self.weights)

    def batch(self, start, size):
        idx = torch.arange(start, min(start + size, self.cat.shape[0]))
        return (self.cat.index_select(0, idx), self.num.index_select(0, idx),
                self.click.index_select(0, idx), self.conv.index_select(0, idx))

    def train(self, batch, steps, warmup):
        """Samples/s of training steps over consecutive batches, as `adaftr bench train`: batch
        gather, forward, loss, backward, Adam, loss values read back."""
        self.reset()
        self.model.train()
        opt = make_optimizer(self.model, self.config)
        n_batches = max(self.cat.shape[0] // batch, 1)
        times = []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            cat, num, click, conv = self.batch((i % n_batches) * batch, batch)
            total, values = self.step_loss(cat, num, click, conv, cl_scale(self.config, i))
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            values.tolist()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        return {"samples_per_s": batch * len(times) / sum(times), "median_step_ms": 1e3 * float(np.median(times))}

    def infer(self, batch, reps):
        self.model.eval()
        n_batches = max(self.cat.shape[0] // batch, 1)
        times = []
        with torch.inference_mode():
            for i in range(2 + reps):
                t0 = time.perf_counter()
                cat, num, _, _ = self.batch((i % n_batches) * batch, batch)
                _ = [t.numpy() for t in self.predict(cat, num)]
                if i >= 2:
                    times.append(time.perf_counter() - t0)
        return {"samples_per_s": batch * len(times) / sum(times), "median_batch_ms": 1e3 * float(np.median(times))}

    def latency(self, calls):
        """One instance: tensors built from Python lists, as `Bundle::predict` builds its own."""
        self.model.eval()
        cat = self.cat[0].tolist()
        num = self.num[0].tolist()
        times = []
        with torch.inference_mode():
            for i in range(20 + calls):
                t0 = time.perf_counter()
                outs = self.predict(torch.tensor([cat], dtype=torch.long), torch.tensor([num], dtype=torch.float32))
                _ = [t.tolist() for t in outs]
                if i >= 20:
                    times.append(time.perf_counter() - t0)
        return {"median_us": 1e6 * float(np.median(times)), "p90_us": 1e6 * float(np.percentile(times, 90))}

    def parity(self, ours_pred, ours_losses):
        return first_batch_parity(self, ours_pred, ours_losses)
