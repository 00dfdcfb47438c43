"""What the training benchmarks share (``bench_memory_estimate.py``, ``bench_gpu.py``).

- :func:`make_dataset`: a small rendered dataset, one page per document, with summaries far
  longer than any ``max_length`` (so every example is truncated to exactly that length and
  the worst case the estimator assumes is the case measured);
- :func:`make_trainer` and :class:`TrainerSteps`: DeepSynth's own ``Trainer`` built from flat
  options the way ``deepsynth train`` builds it, prepared (``Trainer._prepare``: the builders
  of ``training.setup``, accelerate, the data loader) and stepped one optimizer step at a
  time through the loop's ``_optimizer_step``, without the run's files, evaluation or saves;
- :class:`LiveTensors`: the peak bytes of tensor storages alive at once, on the CPU (what
  ``torch.cuda.max_memory_allocated`` counts on a GPU).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import weakref
from pathlib import Path

WORDS = ("market city report council river energy school police weather budget station "
         "museum festival harbour railway library hospital garden").split()


def make_dataset(folder: Path, page_size: str, documents: int = 8) -> Path:
    """One page per document (``page_size`` as ``deepsynth generate`` takes it); summaries
    of 900 words, truncated to ``max_length`` by the trainer."""
    rng = random.Random(0)
    corpus = folder / f"corpus-{page_size}.jsonl"
    with corpus.open("w") as handle:
        for i in range(documents):
            summary = " ".join(f"{rng.choice(WORDS)}{rng.randint(0, 99)}" for _ in range(900))
            handle.write(json.dumps({"id": f"d{i}", "article": " ".join(
                rng.choice(WORDS) for _ in range(12)), "highlights": summary}) + "\n")
    out = folder / f"ds-{page_size}"
    subprocess.run([sys.executable, "-m", "deepsynth", "generate", "--source", str(corpus),
                    "--out", str(out), "--text-field", "article", "--summary-field",
                    "highlights", "--id-field", "id", "--page-size", page_size,
                    "--font-size", "12", "--margin", "8", "--workers", "1"],
                   check=True, capture_output=True)
    return out


def make_trainer(options: dict, root: Path):
    """The config ``options`` resolve to (refusals raise ConfigError, as ``train`` would)
    and a Trainer for it, quiet (no progress, no echo)."""
    from deepsynth.config.training import training_config
    from deepsynth.progress import never_stop, no_progress
    from deepsynth.training.loop import Trainer

    config = training_config(options)
    return config, Trainer(config, no_progress, never_stop, root, lambda text: None)


class TrainerSteps:
    """A prepared Trainer's optimizer steps, one call each, on its own batches (epoch after
    epoch), in train mode: what ``Trainer.run`` does between its logs and saves."""

    def __init__(self, trainer):
        from deepsynth.training.checkpoint import TrainerState

        trainer._prepare()
        self.trainer = trainer
        self.state = TrainerState()
        self.batches = trainer._batches(self.state)
        trainer.model.train()

    def step(self) -> dict:
        """One optimizer step; its loss, grad norm, tokens and examples."""
        return self.trainer._optimizer_step(self.batches, self.state)


class LiveTensors:
    """The peak bytes of tensor storages alive at once (what ``max_memory_allocated`` counts
    on a GPU), on the CPU: every storage an op creates is counted until it is freed."""

    def __init__(self, model):
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker.saw(out)
                return out

        # the weights exist already: counted once here, never again through their views
        tensors = [*model.parameters(), *model.buffers()]
        self.live = {t.untyped_storage().data_ptr(): 0 for t in tensors}
        self.mode = Mode()
        self.now = self.peak = sum(t.untyped_storage().nbytes() for t in tensors)

    def saw(self, out) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key and key not in self.live:
                self.live[key] = storage.nbytes()
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
                weakref.finalize(storage, self._freed, key)

    def _freed(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)
