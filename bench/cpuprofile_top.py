"""Summarises a V8 .cpuprofile (node --cpu-prof) of a wasm program: the functions taking
the most time by themselves (self) and with what they call (total), as shares of the
samples under one function (default: core's training step, `train::step::Step::run`, as
its mangled name reads), wasm names demangled roughly.

Usage: cpuprofile_top.py PROFILE [--under SUBSTRING] [--top 25] [--total SUBSTRING ...]
(see core/examples/train_steps.rs for how the profile is made).
"""

import argparse
import collections
import json
import re


def short(name):
    # Rust's legacy mangling as V8 shows it (`_ZN...E` or `a::b::c::h0123`): keep the path.
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    name = re.sub(r"\$LT\$", "<", name)
    name = re.sub(r"\$GT\$", ">", name)
    name = re.sub(r"\$u20\$", " ", name)
    name = re.sub(r"\$RF\$", "&", name)
    name = re.sub(r"\$C\$", ",", name)
    name = re.sub(r"\.\.", "::", name)
    return name[:140]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("--under", default="train4step4Step3run")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--total", nargs="*", default=[], help="substrings whose total (inclusive) share to print")
    a = ap.parse_args()
    prof = json.load(open(a.profile))
    nodes = {n["id"]: n for n in prof["nodes"]}
    parent = {}
    for n in prof["nodes"]:
        for c in n.get("children", []):
            parent[c] = n["id"]
    stacks = {}

    def stack(i):
        if i not in stacks:
            name = short(nodes[i]["callFrame"]["functionName"] or "(anonymous)")
            stacks[i] = (stack(parent[i]) if i in parent else ()) + (name,)
        return stacks[i]

    dt = prof["timeDeltas"]
    own = collections.Counter()
    incl = collections.Counter()
    pattern_total = collections.Counter()
    total = 0.0
    for s, d in zip(prof["samples"], dt[1:] + [0]):
        st = stack(s)
        if not any(a.under in f for f in st):
            continue
        total += d
        own[st[-1]] += d
        for f in set(st):
            incl[f] += d
        for p in a.total:
            if any(p in f for f in st):
                pattern_total[p] += d
    print(f"{total / 1e3:.0f} ms under '{a.under}'")
    print("self %   total %  function")
    for f, t in own.most_common(a.top):
        print(f"{100 * t / total:6.1f}  {100 * incl[f] / total:7.1f}   {f}")
    for p in a.total:
        print(f"total {100 * pattern_total[p] / total:5.1f}%  under *{p}*")


if __name__ == "__main__":
    main()
