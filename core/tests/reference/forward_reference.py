#!/usr/bin/env python3
"""Independent reference for the AdaFTR forward pass (pure Python 3, stdlib, float64).

Regenerate the fixture read by `core/tests/forward_reference.rs` with, from the repository
root:

    python3 core/tests/reference/forward_reference.py

which writes `core/tests/fixtures/forward_reference.json`. Then run

    cargo test -p adaftr-core --test forward_reference

This is written from docs/MODEL.md (forward pass, relatedness network) and the MMoE, PLE
and AITM papers, not from the Rust code: only the parameter names and shapes are shared
with the implementation, since the test loads these exact weights into it. Conventions:

* A Linear layer named P has `P.weight` of shape (out, in) and `P.bias` of shape (out,);
  y = W x + b. An MLP named P with widths [w0, w1, ...] is layers `P.0`, `P.1`, ... each
  followed by a ReLU.
* Embeddings: one table per categorical field, stored packed in `embedding.table` of shape
  (sum of cardinalities, d); field f's rows start at the sum of the earlier fields'
  cardinalities, and its row 0 is the out-of-vocabulary id. The numerics go through the
  Linear `embedding.numeric` (D -> d) and form one extra field, placed last:
  x = [e_1(c_1); ...; e_F(c_F); W_num n + b_num], of size (F + 1) d.
* Weights are offset + scale * sin(1.3 k + 0.7 i + 0.29 i^2) rounded to float32, with
  k = (CRC-32 of the parameter's name + SALT) mod 997 and i the row-major index of the
  element; scale is 1.5 / sqrt(fan_in) for Linear weights and 0.5 for biases and embedding
  tables, offset 0.1 for biases and 0 otherwise. SALT was picked (by trying 0..399) so that
  every unit of both task representations is active on some instance and the outputs vary
  across the instances: otherwise ReLUs die at these tiny widths and the check is weaker.
  Inputs are float32 values too, so candle (f32) and this script (f64) start from
  identical numbers.
"""

import json
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "forward_reference.json")
SALT = 207


def f32(v):
    """Round a Python float to the nearest float32 value."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


# ---------------------------------------------------------------------------- parameters

class Weights:
    """Parameters created on first request, with a check that each is used with one shape."""

    def __init__(self):
        self.tensors = {}  # name -> (shape, flat values)

    def tensor(self, name, shape):
        if name in self.tensors:
            assert self.tensors[name][0] == list(shape), name
            return self.tensors[name][1]
        k = (zlib.crc32(name.encode()) + SALT) % 997
        n = 1
        for s in shape:
            n *= s
        if name.endswith(".bias"):
            scale, offset = 0.5, 0.1
        elif name.endswith(".weight"):
            scale, offset = 1.5 / math.sqrt(shape[1]), 0.0  # shape (out, in)
        else:  # embedding tables
            scale, offset = 0.5, 0.0
        values = [f32(offset + scale * math.sin(1.3 * k + 0.7 * i + 0.29 * i * i)) for i in range(n)]
        self.tensors[name] = (list(shape), values)
        return values

    def matrix(self, name, rows, cols):
        flat = self.tensor(name, (rows, cols))
        return [flat[r * cols:(r + 1) * cols] for r in range(rows)]

    def linear(self, name, x, out_dim, bias=True):
        """y = W x (+ b), W of shape (out_dim, len(x))."""
        w = self.matrix(name + ".weight", out_dim, len(x))
        b = self.tensor(name + ".bias", (out_dim,)) if bias else [0.0] * out_dim
        return [sum(wr[j] * x[j] for j in range(len(x))) + b[o] for o, wr in enumerate(w)]


def relu(v):
    return [max(0.0, a) for a in v]


def sigmoid(a):
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


def softmax(v):
    m = max(v)
    e = [math.exp(a - m) for a in v]
    s = sum(e)
    return [a / s for a in e]


def mlp(w, name, x, widths):
    for i, width in enumerate(widths):
        x = relu(w.linear(f"{name}.{i}", x, width))
    return x


def gate_mix(w, name, gate_input, experts):
    """Softmax gate computed from `gate_input`, mixing the expert outputs (one weight each)."""
    g = softmax(w.linear(name, gate_input, len(experts)))
    dim = len(experts[0])
    return [sum(g[e] * experts[e][j] for e in range(len(experts))) for j in range(dim)]


# ------------------------------------------------------------------------------- model

def embed(w, name, cfg, cards, cat, num):
    d = cfg["embedding_dim"]
    table = w.matrix(name + ".table", sum(cards), d)
    x = []
    start = 0
    for f, card in enumerate(cards):
        assert 0 <= cat[f] < card
        x += table[start + cat[f]]
        start += card
    x += w.linear(name + ".numeric", num, d)
    return x


def mmoe(w, cfg, x):
    """MMoE (Ma et al., KDD 2018): y_k = sum_e softmax(W_k x)_e f_e(x)."""
    experts = [mlp(w, f"backbone.expert{e}", x, cfg["bottom"]) for e in range(cfg["mmoe_experts"])]
    return gate_mix(w, "backbone.gate_ctr", x, experts), gate_mix(w, "backbone.gate_cvr", x, experts)


def ple(w, cfg, x):
    """PLE (Tang et al., RecSys 2020), customised gate control over L extraction levels.

    At level j, task k's experts read task k's level j-1 output, the shared experts read the
    shared level j-1 output (all three start from x). Task k's gate, computed from its own
    level j-1 output, mixes [task-k experts, shared experts]; below the last level a shared
    gate, computed from the shared input, mixes every expert [ctr, cvr, shared] into the
    next shared input. The last level's task outputs feed the towers.
    """
    levels, n_s, n_t = cfg["ple_levels"], cfg["ple_shared_experts"], cfg["ple_task_experts"]
    widths = cfg["bottom"]
    g_c, g_v, g_s = x, x, x
    for j in range(levels):
        p = f"backbone.level{j}"
        e_c = [mlp(w, f"{p}.ctr{e}", g_c, widths) for e in range(n_t)]
        e_v = [mlp(w, f"{p}.cvr{e}", g_v, widths) for e in range(n_t)]
        e_s = [mlp(w, f"{p}.shared{e}", g_s, widths) for e in range(n_s)]
        new_c = gate_mix(w, f"{p}.gate_ctr", g_c, e_c + e_s)
        new_v = gate_mix(w, f"{p}.gate_cvr", g_v, e_v + e_s)
        if j + 1 < levels and n_s > 0:
            g_s = gate_mix(w, f"{p}.gate_shared", g_s, e_c + e_v + e_s)
        g_c, g_v = new_c, new_v
    return g_c, g_v


def aitm(w, h_c, q_v):
    """AITM (Xi et al., KDD 2021): p = g(h_ctr) (one Linear + ReLU), u in {p, q_cvr},
    w_u = softmax_u(<h1(u), h2(u)> / sqrt(k)), z = sum_u w_u h3(u); h1, h2, h3 are the
    bias-free query, key, value projections."""
    k = len(h_c)
    p = relu(w.linear("aitm.transfer", h_c, k))
    us = [p, q_v]
    qs = [w.linear("aitm.query", u, k, bias=False) for u in us]
    ks = [w.linear("aitm.key", u, k, bias=False) for u in us]
    vs = [w.linear("aitm.value", u, k, bias=False) for u in us]
    a = softmax([sum(qs[t][j] * ks[t][j] for j in range(k)) / math.sqrt(k) for t in range(2)])
    return [a[0] * vs[0][j] + a[1] * vs[1][j] for j in range(k)]


def forward(w, cfg, cards, cat, num):
    """One instance through MODEL.md's forward pass; returns every output the test checks."""
    bb = cfg["backbone"]
    x = embed(w, "embedding", cfg, cards, cat, num)
    if bb == "single-task":
        # Two separate networks: own embeddings, own bottom, own tower.
        x_v = embed(w, "embedding_cvr", cfg, cards, cat, num)
        in_c = mlp(w, "backbone.ctr", x, cfg["bottom"])
        in_v = mlp(w, "backbone.cvr", x_v, cfg["bottom"])
    elif bb == "shared-bottom":
        in_c = in_v = mlp(w, "backbone.bottom", x, cfg["bottom"])
    elif bb in ("esmm", "aitm"):
        in_c = in_v = x
    elif bb == "mmoe":
        in_c, in_v = mmoe(w, cfg, x)
    elif bb == "ple":
        in_c, in_v = ple(w, cfg, x)
    else:
        raise ValueError(bb)
    h_c = mlp(w, "tower_ctr", in_c, cfg["tower"])
    h_v = mlp(w, "tower_cvr", in_v, cfg["tower"])
    if bb == "aitm":
        h_v = aitm(w, h_c, h_v)
    logit_c = w.linear("head_ctr", h_c, 1)[0]
    logit_v = w.linear("head_cvr", h_v, 1)[0]
    pctr, pcvr = sigmoid(logit_c), sigmoid(logit_v)
    # Relatedness network, `towers` input [h_c; h_v; h_c * h_v].
    assert cfg["relatedness_input"] == "towers"
    rel_in = h_c + h_v + [a * b for a, b in zip(h_c, h_v)]
    r = w.linear("relatedness.out", relu(w.linear("relatedness.hidden.0", rel_in, cfg["relatedness_hidden"])), 1)[0]
    tau = cfg["tau_min"] + (cfg["tau_max"] - cfg["tau_min"]) * sigmoid(r)
    return {
        "logit_ctr": logit_c,
        "logit_cvr": logit_v,
        "pctr": pctr,
        "pcvr": pcvr,
        "pctcvr": pctr * pcvr,
        "tau": tau,
        "h_ctr": h_c,
        "h_cvr": h_v,
    }


# ------------------------------------------------------------------------------ fixture

CARDINALITIES = [4, 6, 3]  # OOV id 0 included
N_NUMERIC = 2
# Four instances: an all-OOV row, the maximum id of every field, and two mixed rows.
CAT = [[0, 0, 0], [3, 5, 2], [1, 4, 0], [2, 0, 1]]
NUM = [[f32(v) for v in row] for row in [[0.25, 0.9], [1.0, 0.0], [0.6, 0.35], [0.05, 0.7]]]


def model_config(backbone):
    """A tiny `ModelConfig` (field names as in core/src/config.rs, enum values kebab-case)."""
    return {
        "backbone": backbone,
        "embedding_dim": 3,
        "bottom": [5, 4],
        "tower": [4, 3],
        "dropout": 0.0,
        "mmoe_experts": 3,
        "ple_levels": 2,
        "ple_shared_experts": 2,
        "ple_task_experts": 1,
        "relatedness_input": "towers",
        "relatedness_hidden": 4,
        "tau_min": 0.05,
        "tau_max": 1.0,
    }


def case(backbone):
    cfg = model_config(backbone)
    w = Weights()
    outs = [forward(w, cfg, CARDINALITIES, c, n) for c, n in zip(CAT, NUM)]
    expected = {key: [o[key] for o in outs] for key in outs[0]}
    # The check is only meaningful if nothing is degenerate: representations not all zero,
    # probabilities and tau away from their bounds.
    for key in ("h_ctr", "h_cvr"):
        for j in range(len(expected[key][0])):
            assert any(row[j] != 0.0 for row in expected[key]), (backbone, key, j, "unit never active")
    for key in ("pctr", "pcvr"):
        assert all(1e-4 < p < 1 - 1e-4 for p in expected[key]), (backbone, key, expected[key])
    assert all(cfg["tau_min"] + 1e-4 < t < cfg["tau_max"] - 1e-4 for t in expected["tau"]), (backbone, expected["tau"])
    return {
        "backbone": backbone,
        "model": cfg,
        "loss": {"cl": "joint"},
        "cardinalities": CARDINALITIES,
        "n_numeric": N_NUMERIC,
        "weights": {name: {"shape": shape, "values": values} for name, (shape, values) in sorted(w.tensors.items())},
        "inputs": {"cat": CAT, "num": NUM},
        "expected": expected,
    }


def main():
    backbones = ["single-task", "shared-bottom", "esmm", "mmoe", "ple", "aitm"]
    fixture = {
        "generator": "core/tests/reference/forward_reference.py (pure Python, float64)",
        "tolerance": 1e-5,
        "cases": [case(b) for b in backbones],
    }
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    for c in fixture["cases"]:
        e = c["expected"]
        print(f"{c['backbone']:>13}: {len(c['weights'])} tensors, pctr {[round(p, 4) for p in e['pctr']]}, "
              f"pcvr {[round(p, 4) for p in e['pcvr']]}, tau {[round(t, 4) for t in e['tau']]}")
    print(f"wrote {os.path.normpath(FIXTURE)} ({os.path.getsize(FIXTURE)} bytes)")


if __name__ == "__main__":
    main()
