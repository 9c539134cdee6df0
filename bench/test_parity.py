"""The PyTorch reference computes what adaftr computes, and the parity check would notice if
it did not.

`adaftr bench prepare` (small sizes, a temporary folder) writes every benchmarked model's
initial weights and adaftr's first-batch outputs; each model must pass
`torch_ref.parity_failures`. Then the reference is broken on purpose in the ways a
hand-written InfoNCE or gate typically goes wrong, and each must fail the same check. The
same for a short training run (`adaftr bench trace`, replayed by bench/train_parity.py):
the replay's verdict passes, and fails with a wrong InfoNCE.

Usage: bench/.venv/bin/python bench/test_parity.py [-v]   (ADAFTR=path/to/adaftr; default
target/release/adaftr)
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_ref  # noqa: E402
import train_parity  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ADAFTR = os.environ.get("ADAFTR", str(ROOT / "target" / "release" / "adaftr"))
INFO_NCE = torch_ref.info_nce  # the faults below call the real one while it is patched


def info_nce_tau_on_keys(z_ctr, z_cvr, tau, similarity, symmetric):
    """The column direction divided by the temperature of the other side's instance (the
    transposed row-scaled matrix), instead of the anchor's own."""
    if similarity == "cosine":
        z_ctr, z_cvr = F.normalize(z_ctr, dim=1), F.normalize(z_cvr, dim=1)
    logits = (z_ctr * tau.reciprocal().unsqueeze(1)) @ z_cvr.t()
    target = torch.arange(z_ctr.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def info_nce_one_way(z_ctr, z_cvr, tau, similarity, symmetric):
    return INFO_NCE(z_ctr, z_cvr, tau, similarity, False)


def info_nce_tau_squared(z_ctr, z_cvr, tau, similarity, symmetric):
    return INFO_NCE(z_ctr, z_cvr, tau * tau, similarity, symmetric)


class Parity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch_ref.configure_threads(2)
        cls.tmp = tempfile.TemporaryDirectory(prefix="adaftr-parity-")
        cls.dir = cls.tmp.name
        subprocess.run([ADAFTR, "bench", "prepare", "--out-dir", cls.dir, "--rows", "1024", "--batch", "256"],
                       check=True, stdout=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def failures(self, model, tweak=None):
        d = self.dir
        ref = torch_ref.Reference(f"{d}/{model}.safetensors", f"{d}/data.safetensors")
        if tweak:
            tweak(ref)
        with open(f"{d}/parity-{model}.json") as f:
            ours_losses = json.load(f)
        res = ref.parity(load_file(f"{d}/parity-{model}.safetensors"), ours_losses)
        return torch_ref.parity_failures(res)

    def test_every_benchmarked_model_agrees(self):
        for m in ("literal", "default", "transfer", "plain", "ple"):
            with self.subTest(model=m):
                self.assertEqual(self.failures(m), [])

    def assert_caught(self, model, tweak=None, patch=None):
        with mock.patch.object(torch_ref, "info_nce", patch) if patch else contextlib.nullcontext():
            bad = self.failures(model, tweak)
        self.assertNotEqual(bad, [], f"{model}: a broken reference passed the parity check")
        return bad

    def test_tau_on_the_wrong_side_is_caught(self):
        for m in ("literal", "transfer"):
            with self.subTest(model=m):
                # At initialisation tau hardly varies across instances, so the loss value may
                # not tell; the gradients into the relatedness network do.
                self.assert_caught(m, patch=info_nce_tau_on_keys)

    def test_one_direction_only_is_caught(self):
        self.assert_caught("literal", patch=info_nce_one_way)

    def test_wrong_temperature_is_caught(self):
        self.assert_caught("literal", patch=info_nce_tau_squared)

    def test_gradient_through_the_relatedness_input_is_caught(self):
        # `transfer` and `readout` (the default) train the relatedness network on its own loss
        # only; without the detach its loss also moves the embeddings. Forward values are
        # unchanged: only the weights after one step can tell.
        for m in ("transfer", "default"):
            with self.subTest(model=m):
                bad = self.assert_caught(m, tweak=lambda r: setattr(r.model, "detach_tau_input", False))
                self.assertTrue(
                    all(b.startswith(("weights_after_step", "pctr_after", "pcvr_after")) for b in bad), bad
                )

    def test_missing_projection_heads_are_caught(self):
        self.assert_caught("transfer", tweak=lambda r: setattr(r.model, "projection_ctr", None))

    def test_uniform_gates_are_caught(self):
        def uniform(gate, x, experts):
            return torch.stack(experts, 1).mean(1)

        with mock.patch.object(torch_ref, "mix", uniform):
            self.assertNotEqual(self.failures("ple"), [])

class TrainingParity(unittest.TestCase):
    """`adaftr bench trace` replayed by bench/train_parity.py: the full AdaFTR loss
    (`transfer`) passes its verdict, and the same replay with a wrong InfoNCE fails it."""

    @classmethod
    def setUpClass(cls):
        torch_ref.configure_threads(2)
        cls.tmp = tempfile.TemporaryDirectory(prefix="adaftr-trace-")
        d = Path(cls.tmp.name)
        run = lambda *a: subprocess.run([ADAFTR, *a], check=True, capture_output=True)  # noqa: E731
        run("synth", "--rows", "5000", "--seed", "21", "--no-auc", "--out", str(d / "train.csv"))
        run("synth", "--rows", "1500", "--seed", "22", "--no-auc", "--out", str(d / "valid.csv"))
        run("bench", "trace", "--train", str(d / "train.csv"), "--valid", str(d / "valid.csv"), "--model", "transfer",
            "--seed", "3", "--epochs", "2", "--out-dir", str(d / "trace"))
        cls.replay = train_parity.Replay(d / "trace")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def verdict(self):
        runs = {"adaftr": self.replay.ours(), "f32": self.replay.run(), "perturb": self.replay.run(perturb=1e-6, seed=1)}
        return train_parity.verdict(runs)

    def test_full_loss_configuration_replays_exactly(self):
        self.assertEqual(self.verdict(), [])

    def test_a_wrong_loss_fails_the_verdict(self):
        with mock.patch.object(torch_ref, "info_nce", info_nce_tau_squared):
            self.assertNotEqual(self.verdict(), [])


if __name__ == "__main__":
    unittest.main()
