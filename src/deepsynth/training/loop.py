"""The one training loop (accelerate). Trainer types, PEFT methods and MoE regularizers are
options of it: pieces built by ``training.setup``; the regularizers are hooks
(:mod:`deepsynth.training.hooks`) called at fixed points of the step. The run's files go
through :class:`~deepsynth.training.run_folder.RunFolder`.

"Step" means optimizer step everywhere: logs, ``max_steps``, checkpoints and the API.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from deepsynth.config import to_dict, validate
from deepsynth.config.spec import flat_fields
from deepsynth.config.training import TrainingConfig, train_command
from deepsynth.errors import DeepSynthError
from deepsynth.evaluation.evaluate import LIMIT_METRICS
from deepsynth.evaluation.generation import summary_length_limit
from deepsynth.models.components import format_summary, parameter_summary
from deepsynth.progress import ProgressCallback, RateMeter, StopFlag, never_stop, no_progress
from deepsynth.training import setup
from deepsynth.training.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from deepsynth.training.data import Collator, PageDataset
from deepsynth.training.dropout import residual_dropout
from deepsynth.training.evaluator import ProbeEvaluator
from deepsynth.training.hooks import HookChain
from deepsynth.training.metrics import MetricsLog, memory_stats
from deepsynth.training.moe import RouterMonitor
from deepsynth.training.output import save_final_model
from deepsynth.training.pages import vision_inputs
from deepsynth.training.run_folder import RunFolder


@dataclass
class TrainingResult:
    run_dir: Path
    status: str  # completed | stopped | early_stopped
    step: int
    final_model: Path | None
    metrics: dict = field(default_factory=dict)


class EpochOrder(torch.utils.data.Sampler):
    """A fresh, seeded permutation per epoch: the same order on resume."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class Trainer:
    def __init__(self, config: TrainingConfig, progress: ProgressCallback,
                 should_stop: StopFlag, root: Path | None, echo, journal=None):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState
        from accelerate.utils import set_seed

        self.config, self.progress, self.should_stop, self.echo = config, progress, \
            should_stop, echo
        # Step, evaluation, checkpoint and end lines for a job's log; the CLI's progress bar
        # shows these itself, so by default they go nowhere.
        self.journal = journal or (lambda _: None)
        self.folder = RunFolder(config.task.out)
        self.run_dir = self.folder.path
        self.run_dir.mkdir(parents=True, exist_ok=True)
        trackers = None if config.hub.report_to == "none" else config.hub.report_to
        # accelerate keeps one state per process and refuses another mixed precision later;
        # the job runner trains run after run in one process, so each run starts afresh
        # (the process group, in PartialState, is kept).
        AcceleratorState._reset_state()
        GradientState._reset_state()
        # cpu=True without CUDA: otherwise processes started by torchrun each train alone.
        self.accelerator = Accelerator(mixed_precision=config.schedule.mixed_precision,
                                       log_with=trackers, project_dir=str(self.run_dir),
                                       cpu=not torch.cuda.is_available())
        set_seed(config.schedule.seed)
        self.root = root

    def _prepare(self) -> None:
        config, schedule = self.config, self.config.schedule
        with self.accelerator.main_process_first():  # one process builds the tiny model cache
            self.loaded = setup.load_base_model(config, self.root)
        self.data = setup.build_data(config, self.loaded)
        for note in self.data.notes if self.accelerator.is_main_process else ():
            self.echo(note)
        config = self.config = self._with_length_limit(config)
        self.sampler = EpochOrder(len(self.data.train), schedule.seed)
        collate = Collator(self.loaded.tokenizer.pad_token_id)
        loader = torch.utils.data.DataLoader(self.data.train, batch_size=schedule.batch_size,
                                             sampler=self.sampler, collate_fn=collate,
                                             num_workers=schedule.loader_workers)
        self.steps_total = setup.total_steps(config, len(loader))
        model = setup.make_trainable(self.loaded, config, self.steps_total)
        self.summary = parameter_summary(model)
        optimizer = setup.build_optimizer(model, config)
        self.scheduler = setup.build_scheduler(optimizer, config, self.steps_total)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(
            model, optimizer, loader)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.monitor = RouterMonitor(self.model)
        self.dropout = residual_dropout(self.model, schedule.hidden_dropout)
        self.hooks = HookChain(setup.build_hooks(config, self.model, self.monitor))
        self.monitor.keep_outputs = self.hooks.wants_router_outputs
        self.evaluator = None if self.data.probe is None else ProbeEvaluator(
            self.data.probe, self.loaded.tokenizer, collate, schedule.batch_size,
            config.evaluation.max_new_tokens, config.evaluation.num_beams)
        self.dtype = next(p for p in self.model.parameters()).dtype

    def _with_length_limit(self, config: TrainingConfig) -> TrainingConfig:
        """``max_new_tokens`` not given: the 95th percentile of the training summaries' token
        lengths, written into the config, so the run's config files show the value used."""
        evaluation = config.evaluation
        if evaluation.max_new_tokens is not None:
            return config
        field_max = flat_fields(TrainingConfig)["max_new_tokens"][0].metadata["max"]
        limit = summary_length_limit(self.loaded.tokenizer, training_summaries(self.data.train),
                                     min(config.task.max_length, field_max))
        if self.accelerator.is_main_process:
            self.echo(f"max_new_tokens {limit}: the 95th percentile of the training "
                      f"summaries' token lengths")
        return replace(config, evaluation=replace(evaluation, max_new_tokens=limit))

    def _resume(self) -> TrainerState:
        config = self.config
        if not config.schedule.resume_from_checkpoint:
            return TrainerState()
        if config.schedule.resume_from_checkpoint == "latest":
            found = self.folder.checkpoints()
            if not found:
                raise DeepSynthError(f"resume_from_checkpoint latest: no checkpoint in "
                                     f"{self.run_dir}")
            folder = found[-1]
        else:
            folder = Path(config.schedule.resume_from_checkpoint)
        state, extra = load_checkpoint(folder, self.accelerator.unwrap_model(self.model),
                                       self.optimizer, self.scheduler)
        self.hooks.load_state_dict(extra.get("hooks", {}))
        self.echo(f"resumed from {folder} at step {state.step}")
        return state

    def _batches(self, state: TrainerState):
        """Micro-batches forever, epoch after epoch, starting at the saved position."""
        skip = state.batches_in_epoch
        while True:
            # Through the prepared loader: accelerate sets its sampler's epoch itself from
            # its own counter, which starts at 0 in a resumed process.
            self.loader.set_epoch(state.epoch)
            loader = self.accelerator.skip_first_batches(self.loader, skip) if skip \
                else self.loader
            for batch in loader:
                state.batches_in_epoch += 1
                yield batch
            state.epoch += 1
            state.batches_in_epoch = 0
            skip = 0

    def _forward_loss(self, batch: dict) -> torch.Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "labels": batch["labels"]}
        inputs.update(vision_inputs(batch, self.dtype))
        with self.accelerator.autocast():
            loss = self.model(**inputs).loss
            return self.hooks.add_extra_losses(loss, batch["attention_mask"])

    def _optimizer_step(self, batches, state: TrainerState) -> dict:
        """One optimizer step: accumulation x the hooks' passes, hooks, clip, step, schedule."""
        config, hooks = self.config, self.hooks
        accumulation, passes = config.schedule.gradient_accumulation_steps, hooks.passes
        losses, tokens, examples = [], 0, 0
        for micro in range(accumulation):
            batch = next(batches)
            tokens += int(batch["attention_mask"].sum())
            examples += len(batch["ids"])
            hooks.start_batch()
            for index in range(passes):
                last = micro == accumulation - 1 and index == passes - 1
                sync = contextlib.nullcontext() if last else self.accelerator.no_sync(self.model)
                with sync:
                    loss = self._forward_loss(batch)
                    # Gradient checkpointing re-runs the routers in backward: not recorded.
                    with self.monitor.paused():
                        self.accelerator.backward(loss / (accumulation * passes))
                losses.append(float(loss.detach()))
                hooks.pass_done()
            hooks.finish_batch()
        hooks.before_optimizer_step(self.optimizer)
        norm = self.accelerator.clip_grad_norm_(self.trainable,
                                                config.schedule.max_grad_norm or math.inf)
        self.optimizer.step()
        hooks.after_optimizer_step(self.optimizer)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        return {"loss": sum(losses) / len(losses), "grad_norm": float(norm),
                "tokens": tokens, "examples": examples}

    def run(self) -> TrainingResult:
        self._prepare()
        config, accelerator = self.config, self.accelerator
        state = self._resume()
        log = MetricsLog(self.folder, state.step if config.schedule.resume_from_checkpoint
                         else None)
        if accelerator.is_main_process:
            self._write_start_files()
        if config.hub.report_to != "none":
            accelerator.init_trackers("deepsynth", config=to_dict(config))
        meter = RateMeter(self.steps_total, state.step)
        batches = self._batches(state)
        window = {"tokens": 0, "examples": 0, "started": time.perf_counter()}
        status = "completed"
        self.model.train()
        while state.step < self.steps_total:
            result = self._optimizer_step(batches, state)
            window["tokens"] += result["tokens"]
            window["examples"] += result["examples"]
            if state.step % config.schedule.log_steps == 0 or state.step == self.steps_total:
                self._log(log, state, result, window)
            if self.evaluator and (state.step % config.evaluation.eval_steps == 0
                                   or state.step == self.steps_total):
                if self._evaluate(log, state):
                    status = "early_stopped"
            if state.step % config.schedule.save_steps == 0:
                self._save(state)
            self.progress(meter.report("train", state.step))
            if status == "early_stopped":
                break
            if state.step < self.steps_total and self.should_stop():
                status = "stopped"
                break
        if status != "completed" or state.step % config.schedule.save_steps:
            self._save(state)
        self.journal(f"training {status} at step {state.step} of {self.steps_total}")
        return self._finish(log, state, status)

    def _log(self, log: MetricsLog, state: TrainerState, result: dict, window: dict) -> None:
        elapsed = max(time.perf_counter() - window["started"], 1e-9)
        record = {"step": state.step, "epoch": state.epoch, "loss": round(result["loss"], 6),
                  "lr": self.scheduler.get_last_lr()[0],
                  "grad_norm": round(result["grad_norm"], 6),
                  "samples_per_second": round(window["examples"] / elapsed, 3),
                  "tokens_per_second": round(window["tokens"] / elapsed, 1),
                  **memory_stats(), "moe": self.monitor.read_stats()}
        window.update(tokens=0, examples=0, started=time.perf_counter())
        if self.accelerator.is_main_process:
            log.write(record)
            self.journal(f"step {state.step}/{self.steps_total} · loss {record['loss']:.4f} · "
                         f"lr {record['lr']:.3g}")
        if self.config.hub.report_to != "none":
            self.accelerator.log({k: v for k, v in record.items() if k != "moe"},
                                 step=state.step)

    def _evaluate(self, log: MetricsLog, state: TrainerState) -> bool:
        """Evaluate the probe; True when early stopping says to stop."""
        try:
            with self.monitor.paused():  # statistics describe the training batches
                results = self.evaluator.run(self.accelerator.unwrap_model(self.model),
                                             self.dtype, self.folder, state.step)
        finally:
            self.model.train()
        if self.accelerator.is_main_process:
            log.write({"step": state.step, "eval": results})
            shown = ", ".join(f"{k} {v:.4f}" for k, v in results.items()
                              if isinstance(v, float) and k in ("eval_loss", "rouge1", "rougeL"))
            self.journal(f"evaluation at step {state.step}: {shown}")
        watched = self.config.evaluation.early_stopping_metric
        metric = results[watched]
        better = state.best_metric is None or (
            metric < state.best_metric if watched == "eval_loss" else metric > state.best_metric)
        if better:
            state.best_metric, state.evals_without_improvement = metric, 0
        else:
            state.evals_without_improvement += 1
        patience = self.config.evaluation.early_stopping_patience
        return bool(patience and state.evals_without_improvement >= patience)

    def _save(self, state: TrainerState) -> None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        folder = self.folder.checkpoint_folder(state.step)
        adapter = self.config.adapter
        state.extra["setup"] = {"peft": adapter.peft, "lora_preset": adapter.lora_preset,
                                "model": self.config.task.model}
        save_checkpoint(folder, self.accelerator.unwrap_model(self.model), self.optimizer,
                        self.scheduler, state, {"hooks": self.hooks.state_dict()})
        self.folder.prune_checkpoints(self.config.schedule.keep_last)
        self.journal(f"checkpoint saved: {folder.name}")

    def _write_start_files(self) -> None:
        table = format_summary(self.summary)
        self.echo(table)
        self.folder.write_start(to_dict(self.config), train_command(self.config), table)

    def _finish(self, log: MetricsLog, state: TrainerState, status: str) -> TrainingResult:
        self.accelerator.wait_for_everyone()
        self.monitor.close()
        final = None
        summary = {"status": status, "steps": state.step,
                   "parameters_total": sum(r.parameters for r in self.summary),
                   "parameters_trainable": sum(r.trainable for r in self.summary),
                   "randomly_initialized_base": self.loaded.randomly_initialized,
                   **self.data.skipped,
                   "total_seconds": round(time.time() - log.started, 2)}
        evals = [r["eval"] for r in log.records() if "eval" in r]
        if evals:
            best = min(evals, key=lambda e: e["eval_loss"])
            summary.update(best_eval_loss=best["eval_loss"], perplexity=best["perplexity"],
                           rouge={k: max(e[k] for e in evals) for k in
                                  ("rouge1", "rouge2", "rougeL")})
            # The last evaluation's (the final model's); older records have none.
            summary.update({k: evals[-1][k] for k in LIMIT_METRICS if k in evals[-1]})
        if self.accelerator.is_main_process:
            if status != "stopped":
                final = save_final_model(self.folder.final, self.accelerator.unwrap_model(
                    self.model), self.loaded, self.config, summary)
            log.save_summary(**summary)
        if self.config.hub.report_to != "none":
            self.accelerator.end_training()
        return TrainingResult(self.run_dir, status, state.step, final, summary)


def training_summaries(train: torch.utils.data.Dataset) -> list[str]:
    """The reference texts of the training examples: the summary column of a page dataset
    (read as a column: no page is decoded), each conversation's last assistant turn."""
    if isinstance(train, PageDataset):
        column = list(train.rows.table["summary"])
        return [column[i] for i in train.indices]
    return [train[i]["summary"] for i in range(len(train))]


def train(config: TrainingConfig, progress: ProgressCallback = no_progress,
          should_stop: StopFlag = never_stop, root: Path | None = None,
          echo=print, journal=None) -> TrainingResult:
    """Fine-tune according to ``config``; checkpoints, metrics and the final model go to
    ``config.task.out``. ``should_stop`` is checked at each optimizer-step boundary (pause).
    ``echo``: notes for the user; ``journal``: a line per logged step, evaluation,
    checkpoint and the end (a job's log)."""
    validate(config)
    return Trainer(config, progress, should_stop, root, echo, journal).run()
