"""PyTorch reference of the AdaFTR model and loss (MODEL.md's literal spec, and the fixed/none
modes and projection heads), for speed comparison and parity.

It is written here only to compare against: it loads the weights, config and schema from an
adaftr model bundle (a .safetensors file) and implements exactly what core/ computes for
the configurations the benchmark uses (shared-bottom backbone, towers, heads, the
relatedness network on the tower representations, optional projection heads, and the loss
L = L_ctr + L_ctcvr [+ L_cvr_click] + lambda * ramp * L_cl [+ beta * mean((r - r0)^2)] with
in-batch cosine or dot InfoNCE). Anything else raises instead of silently differing.
"""

import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.numpy import load_file


def load_bundle(path):
    with safe_open(path, "np") as f:
        meta = f.metadata()
        weights = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != "adaftr-bundle":
        raise ValueError(f"{path} is not an adaftr bundle")
    return json.loads(meta["config"]), json.loads(meta["schema"]), weights


def linear(i, o):
    return nn.Linear(i, o)


class Mlp(nn.Module):
    """Linear + ReLU per layer (as core/src/nn/mlp.rs)."""

    def __init__(self, in_dim, widths):
        super().__init__()
        dims = [in_dim] + list(widths)
        self.layers = nn.ModuleList(linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x):
        for layer in self.layers:
            x = F.relu(layer(x))
        return x


class Projection(nn.Module):
    """Linear layers with ReLU between them, the last linear (core/src/model/projection.rs)."""

    def __init__(self, in_dim, widths):
        super().__init__()
        dims = [in_dim] + list(widths)
        self.layers = nn.ModuleList(linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


class AdaFtr(nn.Module):
    def __init__(self, config, schema):
        super().__init__()
        m, loss = config["model"], config["loss"]
        if m["backbone"] != "shared-bottom":
            raise NotImplementedError(f"backbone {m['backbone']}")
        if loss["cl"] not in ("joint", "none", "fixed"):
            raise NotImplementedError(f"cl {loss['cl']}")
        if loss["cl"] != "none" and loss["negatives"] != "in-batch":
            raise NotImplementedError("sampled negatives")
        if m.get("dropout", 0.0) != 0.0:
            raise NotImplementedError("dropout")
        self.m, self.loss_cfg = m, loss
        d = m["embedding_dim"]
        cards = [len(f["vocab"]) + 1 for f in schema["categorical"]]
        n_num = len(schema["numeric"])
        self.register_buffer("offsets", torch.tensor(np.cumsum([0] + cards[:-1]), dtype=torch.long))
        self.emb_table = nn.Parameter(torch.zeros(sum(cards), d))
        self.emb_numeric = linear(n_num, d)
        x_dim = (len(cards) + 1) * d
        self.bottom = Mlp(x_dim, m["bottom"])
        t_in = m["bottom"][-1] if m["bottom"] else x_dim
        self.tower_ctr = Mlp(t_in, m["tower"])
        self.tower_cvr = Mlp(t_in, m["tower"])
        k = m["tower"][-1]
        self.head_ctr = linear(k, 1)
        self.head_cvr = linear(k, 1)
        self.cl = loss["cl"]
        self.relatedness = None
        self.projection = None
        if self.cl == "joint":
            in_dim = 3 * k if m["relatedness_input"] == "towers" else x_dim
            self.relatedness = nn.ModuleDict(
                {"hidden": Mlp(in_dim, [m["relatedness_hidden"]]), "out": linear(m["relatedness_hidden"], 1)}
            )
        if self.cl != "none" and m.get("projection"):
            self.projection = nn.ModuleList([Projection(k, m["projection"]), Projection(k, m["projection"])])

    def bundle_names(self):
        """Our parameter -> the bundle tensor name."""
        names = {"emb_table": "embedding.table"}
        for n, _ in self.named_parameters():
            if n == "emb_table":
                continue
            b = n.replace("emb_numeric", "embedding.numeric").replace("bottom.layers", "backbone.bottom")
            b = b.replace("tower_ctr.layers", "tower_ctr").replace("tower_cvr.layers", "tower_cvr")
            b = b.replace("relatedness.hidden.layers", "relatedness.hidden")
            b = b.replace("projection.0.layers", "projection_ctr").replace("projection.1.layers", "projection_cvr")
            names[n] = b
        return names

    def load_bundle_weights(self, weights):
        names = self.bundle_names()
        used = set()
        with torch.no_grad():
            for n, p in self.named_parameters():
                w = weights[names[n]]
                if tuple(w.shape) != tuple(p.shape):
                    raise ValueError(f"{names[n]}: {w.shape} vs {tuple(p.shape)}")
                p.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                used.add(names[n])
        extra = set(weights) - used
        if extra:
            raise ValueError(f"bundle tensors this reference does not implement: {sorted(extra)}")

    def forward(self, cat, num):
        n = cat.shape[0]
        x = torch.cat([F.embedding(cat + self.offsets, self.emb_table).reshape(n, -1), self.emb_numeric(num)], 1)
        b = self.bottom(x)
        h_c, h_v = self.tower_ctr(b), self.tower_cvr(b)
        logit_c = self.head_ctr(h_c).squeeze(1)
        logit_v = self.head_cvr(h_v).squeeze(1)
        pctr, pcvr = torch.sigmoid(logit_c), torch.sigmoid(logit_v)
        out = {"logit_ctr": logit_c, "logit_cvr": logit_v, "pctr": pctr, "pcvr": pcvr, "pctcvr": pctr * pcvr}
        out["tau"], out["tau_logit"] = None, None
        if self.cl == "fixed":
            out["tau"] = torch.full_like(pctr, self.loss_cfg["fixed_tau"])
        elif self.cl == "joint":
            inp = torch.cat([h_c, h_v, h_c * h_v], 1) if self.m["relatedness_input"] == "towers" else x
            if self.m.get("relatedness_detach_input"):
                inp = inp.detach()
            r = self.relatedness["out"](self.relatedness["hidden"](inp)).squeeze(1)
            lo, hi = self.m["tau_min"], self.m["tau_max"]
            out["tau"], out["tau_logit"] = torch.sigmoid(r) * (hi - lo) + lo, r
        if self.projection is not None:
            out["z_ctr"], out["z_cvr"] = self.projection[0](h_c), self.projection[1](h_v)
        else:
            out["z_ctr"], out["z_cvr"] = h_c, h_v
        return out


def softplus(x):
    return F.relu(x) + torch.log1p(torch.exp(-x.abs()))


def product_bce(a, b, y):
    na, nb = -a, -b
    neg_log_p = softplus(na) + softplus(nb)
    log_1mp = torch.logsumexp(torch.stack([na, nb, na + nb], 1), 1) - neg_log_p
    return (y * neg_log_p - (1 - y) * log_1mp).mean()


def info_nce_rows(s, tau):
    logits = s / tau.unsqueeze(1)
    return (torch.logsumexp(logits, 1) - logits.diagonal()).mean()


def contrastive(zc, zv, tau, loss):
    if loss["similarity"] == "cosine":
        zc = zc / torch.sqrt((zc * zc).sum(1, keepdim=True) + 1e-12)
        zv = zv / torch.sqrt((zv * zv).sum(1, keepdim=True) + 1e-12)
    s = zc @ zv.t()
    rows = info_nce_rows(s, tau)
    if loss["symmetric"]:
        return 0.5 * (rows + info_nce_rows(s.t(), tau))
    return rows


def tau_logit_of(m, tau):
    p = min(max((tau - m["tau_min"]) / (m["tau_max"] - m["tau_min"]), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def compute_loss(model, out, click, conv, step):
    """The loss terms of core/src/train/objective.rs `compute` at optimiser step `step` (0-based)."""
    loss = model.loss_cfg
    ctr = F.binary_cross_entropy_with_logits(out["logit_ctr"], click)
    ctcvr = product_bce(out["logit_ctr"], out["logit_cvr"], conv)
    total = ctr + ctcvr
    terms = {"ctr": ctr, "ctcvr": ctcvr}
    if loss["cvr_click_loss"]:
        per = F.binary_cross_entropy_with_logits(out["logit_cvr"], conv, reduction="none")
        l = (per * click).sum() / click.sum().clamp(min=1.0)
        total = total + l
        terms["cvr_click"] = l
    if loss["cl"] != "none" and out["tau"] is not None:
        w = loss.get("cl_warmup_steps", 0)
        scale = 1.0 if w == 0 else min(step / w, 1.0)
        lam = loss["lambda"] * scale
        l = contrastive(out["z_ctr"], out["z_cvr"], out["tau"], loss)
        if lam > 0:
            total = total + lam * l
        terms["cl"] = l
        if out["tau_logit"] is not None and loss.get("tau_prior_weight", 0.0) > 0:
            r0 = tau_logit_of(model.m, loss["tau_prior_mean"])
            p = ((out["tau_logit"] - r0) ** 2).mean()
            total = total + loss["tau_prior_weight"] * p
            terms["tau_prior"] = p
    terms["total"] = total
    return terms


def make_optimizer(model, config):
    t = config["train"]
    rel = [p for n, p in model.named_parameters() if n.startswith("relatedness.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("relatedness.")]
    groups = [{"params": rest, "lr": t["lr"]}]
    if rel:
        groups.append({"params": rel, "lr": t["lr"] * t.get("tau_lr_scale", 1.0)})
    cls = torch.optim.AdamW if t["weight_decay"] > 0 else torch.optim.Adam
    kw = {"weight_decay": t["weight_decay"]} if t["weight_decay"] > 0 else {}
    return cls(groups, betas=(t["adam_beta1"], t["adam_beta2"]), eps=t["adam_eps"], **kw)


class Reference:
    """A model loaded from a bundle plus the prepared data of `adaftr bench prepare`."""

    def __init__(self, bundle_path, data_path):
        self.config, self.schema, weights = load_bundle(bundle_path)
        self.model = AdaFtr(self.config, self.schema)
        self.model.load_bundle_weights(weights)
        self.weights = weights
        d = load_file(data_path)
        self.cat = torch.from_numpy(d["cat"].astype(np.int64))
        self.num = torch.from_numpy(d["num"])
        self.click = torch.from_numpy(d["click"])
        self.conv = torch.from_numpy(d["conversion"])

    def reset(self):
        self.model.load_bundle_weights(self.weights)

    def batch(self, start, size):
        idx = torch.arange(start, min(start + size, self.cat.shape[0]))
        return (self.cat.index_select(0, idx), self.num.index_select(0, idx),
                self.click.index_select(0, idx), self.conv.index_select(0, idx))

    def train(self, batch, steps, warmup):
        """Samples/s of training steps over consecutive batches, as `adaftr bench train`."""
        self.reset()
        self.model.train()
        opt = make_optimizer(self.model, self.config)
        n_batches = max(self.cat.shape[0] // batch, 1)
        k = 0
        times = []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            cat, num, click, conv = self.batch((k % n_batches) * batch, batch)
            k += 1
            out = self.model(cat, num)
            terms = compute_loss(self.model, out, click, conv, i)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            _ = {n: v.item() for n, v in terms.items()}
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
                out = self.model(cat, num)
                _ = [out[k].numpy() for k in ("pctr", "pcvr", "pctcvr", "tau") if out[k] is not None]
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
                out = self.model(torch.tensor([cat], dtype=torch.long), torch.tensor([num], dtype=torch.float32))
                _ = [out[k].tolist() for k in ("pctr", "pcvr", "pctcvr", "tau") if out[k] is not None]
                if i >= 20:
                    times.append(time.perf_counter() - t0)
        return {"median_us": 1e6 * float(np.median(times)), "p90_us": 1e6 * float(np.percentile(times, 90))}

    def parity(self, ours_pred, ours_losses):
        """Max |ours - PyTorch| of the predictions and loss terms on the first batch, and of
        the predictions after one Adam step on it."""
        b = int(ours_losses["batch"])
        cat, num, click, conv = self.batch(0, b)
        self.reset()
        self.model.train()
        out = self.model(cat, num)
        res = {}
        for k in ("pctr", "pcvr", "pctcvr", "tau"):
            if out[k] is not None and k in ours_pred:
                res[k] = float(np.abs(out[k].detach().numpy() - ours_pred[k]).max())
        terms = compute_loss(self.model, out, click, conv, 0)
        for k, v in terms.items():
            if ours_losses.get(k) is not None:
                res["loss_" + k] = abs(v.item() - ours_losses[k])
        opt = make_optimizer(self.model, self.config)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        with torch.no_grad():
            after = self.model(cat, num)
        for k in ("pctr", "pcvr"):
            res[k + "_after_step"] = float(np.abs(after[k].numpy() - ours_pred[k + "_after_step"]).max())
        self.reset()
        return res
