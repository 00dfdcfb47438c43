"""Fine-tuning the real tiny DeepSeek-OCR-2 (transformers class, real PEFT, pages rendered by
``deepsynth generate``): every adapter method trains, adapters save and reload exactly, merged
exports equal their adapters, the model overfits a tiny corpus, ROUGE keeps every script, and
a run folder holds what it promises."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed
from conftest import run_cli, write_jsonl
from rouge_score import rouge_scorer
from safetensors.torch import load_file

from deepsynth.config.training import DEFAULT_PROMPT, training_config
from deepsynth.errors import ConfigError
from deepsynth.evaluation.evaluate import evaluate_model
from deepsynth.evaluation.rouge import UnicodeTokenizer, mean_rouge, rouge
from deepsynth.models.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from deepsynth.models.components import is_vision
from deepsynth.models.export import export_model
from deepsynth.models.model_info import MODEL_INFO_NAME
from deepsynth.models.registry import load_model
from deepsynth.training import setup
from deepsynth.training.data import decode_page, load_split, pixel_values
from deepsynth.training.loop import train

TINY = "tiny-deepseek-ocr-2"
FAMILY = "deepseek_ocr2"
STEPS = 3
# A fake credential present in the environment during every run: it must land in no file.
FAKE_TOKEN = "hf_FakeSecretTokenForDeepSynthTests0123456789"

# Distinct short documents (one 256 px page each) with short distinct summaries.
CORPUS = [
    ("The baker mixed sweet red apples into a warm pie for the village fair.", "red apple pie"),
    ("A small blue boat drifted slowly down the wide river at dawn.", "blue river boat"),
    ("Heavy snow covered the quiet mountain road all through the night.",
     "snowy mountain road"),
    ("The old library opened a new reading room for children on Monday.", "new reading room"),
    ("Farmers sold fresh green beans and tomatoes at the busy morning market.",
     "fresh market vegetables"),
    ("A loud thunderstorm knocked out power across the eastern city.", "city power outage"),
    ("The school choir sang three songs at the spring music festival.",
     "choir spring concert"),
    ("Engineers finished building the long steel bridge over the harbour.",
     "harbour bridge finished"),
]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One data root per module: the tiny model is built once and cached there.

    Torch runs on one thread here: the tiny model's matrices are too small to gain from
    two, and on a shared 2-core machine a second OpenMP thread waiting on a descheduled
    sibling made training 5-10x slower (measured: 40 steps 8 s vs 55-112 s)."""
    folder = tmp_path_factory.mktemp("data-root")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DEEPSYNTH_DATA_ROOT", str(folder))
            patch.setenv("HF_TOKEN", FAKE_TOKEN)
            patch.setenv("HUGGING_FACE_HUB_TOKEN", FAKE_TOKEN)
            yield folder
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(root, tmp_path_factory) -> Path:
    """8 rendered 256x256 one-page examples, generated with the real CLI (train split only)."""
    work = tmp_path_factory.mktemp("corpus")
    rows = [{"id": f"row-{i}", "document": text, "abstract": summary}
            for i, (text, summary) in enumerate(CORPUS)]
    source = write_jsonl(work / "corpus.jsonl", rows)
    out = work / "dataset"
    done = run_cli("generate", "--source", str(source), "--out", str(out),
                   "--text-field", "document", "--summary-field", "abstract", "--id-field", "id",
                   "--page-size", "256x256", "--font-size", "14", "--margin", "8",
                   "--workers", "1")
    assert done.returncode == 0, done.stderr
    split = load_split(str(out), "train", max_pages=4)
    assert len(split.indices) == 8 and split.skipped_too_many_pages == 0
    assert split.table["num_pages"] == [1] * 8
    return out


def quick_config(dataset: Path, out: Path, peft: str, lora_preset: str, **extra):
    return training_config({
        "dataset": str(dataset), "out": str(out), "preset": "quick_test", "peft": peft,
        "lora_preset": lora_preset, "max_steps": STEPS, "eval_steps": STEPS,
        "save_steps": STEPS, "eval_split": "train", "max_new_tokens": 8, **extra})


class Run:
    def __init__(self, config, result, initial: dict[str, torch.Tensor]):
        self.config, self.result, self.initial = config, result, initial

    @property
    def final(self) -> Path:
        return self.result.final_model


def initial_trainable(config, root: Path) -> dict[str, torch.Tensor]:
    """The trainable tensors as the loop starts from them: same seed, same builders."""
    set_seed(config.schedule.seed)
    loaded = setup.load_base_model(config, root)
    model = setup.make_trainable(loaded, config, config.schedule.max_steps)
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def runs(root, dataset, tmp_path_factory):
    """Short quick_test runs, trained once per (peft, lora_preset) and shared by the tests."""
    cache: dict[tuple[str, str], Run] = {}

    def get(peft: str, lora_preset: str) -> Run:
        key = (peft, lora_preset)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"run-{peft}-{lora_preset}")
            config = quick_config(dataset, out, peft, lora_preset)
            result = train(config, root=root, echo=lambda *_: None)
            cache[key] = Run(config, result, initial_trainable(config, root))
        return cache[key]

    return get


@pytest.fixture(scope="module")
def base(root):
    return load_model(TINY, root=root)


@pytest.fixture(scope="module")
def batch(base, dataset) -> dict:
    """Two real rendered pages with the same text ids: [bos] + 145 image tokens + prompt +
    a summary + [eos]."""
    assert base.image_tokens_per_page == 145
    tokenizer = base.tokenizer
    text = tokenizer(DEFAULT_PROMPT + "\n", add_special_tokens=False).input_ids + tokenizer(
        "blue river boat", add_special_tokens=False).input_ids
    ids = [tokenizer.bos_token_id] + [base.image_token_id] * 145 + text + [
        tokenizer.eos_token_id]
    split = load_split(str(dataset), "train", max_pages=4)
    pages = []
    for index in (1, 4):
        png = split.table[index]["images"][0]["bytes"]
        page = decode_page(png, base.image_size)
        pages.append(torch.from_numpy(np.asarray(page, dtype=np.uint8).copy()))
    input_ids = torch.tensor([ids, ids])
    assert int((input_ids == base.image_token_id).sum()) == 2 * 145
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "pixel_values": pixel_values(torch.stack(pages).unsqueeze(1), torch.float32)}


@torch.no_grad()
def logits_of(model, batch: dict) -> torch.Tensor:
    model.eval()
    return model(**batch).logits.detach().clone()


@pytest.fixture(scope="module")
def base_logits(base, batch):
    return logits_of(base.model, batch)


def plain(name: str) -> str:
    """A PEFT parameter name as in the base model (wrappers can nest: base_layer.base_layer)."""
    return name.removeprefix("base_model.model.").replace(".base_layer", "")


def history(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics_history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --------------------------------------------------------------------------- 1. PEFT methods


METHODS = [("lora", "standard"), ("dora", "standard"), ("adalora", "standard"),
           ("full", "standard"), ("lora", "high_capacity_moe")]


@pytest.mark.parametrize(("peft", "lora_preset"), METHODS,
                         ids=[f"{p}-{lp}" for p, lp in METHODS])
def test_each_peft_method_trains_a_few_steps(runs, root, base, peft, lora_preset):
    run = runs(peft, lora_preset)
    assert run.result.status == "completed"
    assert run.result.step == STEPS
    steps = [r for r in history(run.result.run_dir) if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    assert all(math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in steps)

    # What the loop reported as trainable is what the builders make trainable.
    assert run.result.metrics["parameters_trainable"] == sum(
        t.numel() for t in run.initial.values())
    assert run.initial, "nothing trainable"
    assert not any(is_vision(n, FAMILY) for n in run.initial)

    final = load_model(str(run.final), root=root)
    after = dict(final.model.named_parameters())
    base_params = dict(base.model.named_parameters())
    # Every trainable tensor moved away from where training started...
    unchanged = [n for n, before in run.initial.items()
                 if torch.equal(before, after[n].detach())]
    if peft == "adalora":
        # ...except the singular values of modules AdaLoRA's budget pruned to rank 0: with
        # tinit = tfinal = 0 it prunes from step 1 to target_r x modules. They must be zero
        # and marked so in the saved rank pattern, and every pruned value must be zero.
        pattern = json.loads((run.final / ADAPTER_CONFIG).read_text())["rank_pattern"]
        assert len(pattern) == 8
        kept = sum(sum(mask) for mask in pattern.values())
        assert kept == 8 * 8  # target_r (16 // 2) for each of the 8 attention projections
        for key, mask in pattern.items():
            values = after["base_model.model." + key].detach().flatten()
            assert all(bool(v != 0) == m for v, m in zip(values, mask, strict=True)), key
        assert all(n.endswith("lora_E.default") and not any(pattern[plain(n)])
                   for n in unchanged), unchanged
        assert len(unchanged) < len(pattern)
    else:
        assert not unchanged, f"{len(unchanged)} trainable tensors did not change: " \
            f"{unchanged[:3]}"
    if peft == "full":
        assert all(n in base_params for n in run.initial)
        assert all(not n.startswith("base_model.") for n in after)
    else:
        saved = load_file(str(run.final / ADAPTER_WEIGHTS))
        assert set(saved) == set(run.initial)
        assert all(re.search(r"lora_|ranknum", n) for n in saved)
        zero_init = "lora_E" if peft == "adalora" else "lora_B"
        zero_started = [n for n in run.initial if zero_init in n]
        assert zero_started and all(not run.initial[n].any() for n in zero_started)
        assert all(after[n].detach().abs().sum() > 0 for n in zero_started
                   if n not in unchanged)
        # The frozen base under the adapters is exactly the base model.
        for name, parameter in after.items():
            if name not in run.initial and "lora_" not in name and "ranknum" not in name:
                assert torch.equal(parameter.detach(), base_params[plain(name)].detach()), name
    if lora_preset == "high_capacity_moe":
        assert any(".mlp.experts." in n and "lora_A" in n for n in run.initial)
        assert any(".mlp.gate.lora_" in n for n in run.initial)
    # The vision side never moves.
    vision = {plain(n): p for n, p in after.items() if is_vision(n, FAMILY)}
    assert len(vision) == sum(is_vision(n, FAMILY) for n in base_params) > 0
    for name, parameter in vision.items():
        assert torch.equal(parameter.detach(), base_params[name].detach()), name


def test_qlora_is_refused_without_cuda(dataset, root, tmp_path):
    assert not torch.cuda.is_available()
    with pytest.raises(ConfigError) as error:
        train(quick_config(dataset, tmp_path / "q", "qlora", "standard"), root=root)
    assert error.value.field == "peft"
    assert "peft" in str(error.value) and "CUDA" in str(error.value)
    with pytest.raises(ConfigError) as error:
        train(quick_config(dataset, tmp_path / "q4", "lora", "qlora_4bit"), root=root)
    assert error.value.field == "peft"
    assert not (tmp_path / "q" / "final").exists()


@pytest.mark.parametrize("peft", ["dora", "adalora"])
def test_methods_that_cannot_adapt_experts_are_refused(dataset, tmp_path, peft):
    # Refused while parsing the options, before a model is loaded or a folder is made.
    with pytest.raises(ConfigError, match="router or experts") as error:
        quick_config(dataset, tmp_path / "x", peft, "high_capacity_moe")
    assert error.value.field == "peft"
    assert peft in str(error.value)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- 2. reload


def rebuilt_from_checkpoint(run: Run, root: Path):
    """The model as the loop builds it, with the last checkpoint's trained tensors copied in."""
    set_seed(run.config.schedule.seed)
    loaded = setup.load_base_model(run.config, root)
    model = setup.make_trainable(loaded, run.config, run.config.schedule.max_steps)
    weights = load_file(str(run.result.run_dir / "checkpoints" / f"step-{STEPS:06d}" /
                            "trainable.safetensors"))
    parameters = dict(model.named_parameters())
    assert set(weights) == {n for n, p in parameters.items() if p.requires_grad}
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)
    return model


RELOADS = [("lora", "high_capacity_moe"), ("lora", "balanced"), ("dora", "standard"),
           ("adalora", "standard")]


@pytest.mark.parametrize(("peft", "lora_preset"), RELOADS,
                         ids=[f"{p}-{lp}" for p, lp in RELOADS])
def test_saved_adapter_reloads_to_identical_outputs(runs, root, batch, base_logits, peft,
                                                    lora_preset):
    run = runs(peft, lora_preset)
    first = load_model(str(run.final), root=root)
    second = load_model(str(run.final), root=root)
    assert first.model is not second.model
    first_logits, second_logits = logits_of(first.model, batch), logits_of(second.model, batch)
    assert torch.equal(first_logits, second_logits)
    assert torch.isfinite(first_logits).all()
    # The adapter really loaded: outputs differ from the untrained base model (an adapter
    # left at its initialization gives exactly the base logits; AdaLoRA moves least).
    assert (first_logits - base_logits).abs().max() > 1e-4

    # Every saved tensor exists under its exact name in the rebuilt model and holds the saved
    # value (deepsynth.models.adapters avoids PeftModel.from_pretrained, whose key renaming
    # it documents as loading none of them for this model).
    saved = load_file(str(run.final / ADAPTER_WEIGHTS))
    parameters = dict(first.model.named_parameters())
    missing = [k for k in saved if k not in parameters]
    assert not missing, missing[:3]
    assert set(saved) == {n for n, p in parameters.items() if "lora_" in n}
    for name, tensor in saved.items():
        assert torch.equal(parameters[name].detach(), tensor), name
    if lora_preset == "high_capacity_moe":  # ParamWrapper adapters on experts and router
        assert any(".mlp.experts.base_layer.lora_A" in k for k in saved)
        assert any(".mlp.experts.lora_B" in k for k in saved)
        assert any(".mlp.gate.lora_A" in k for k in saved)

    # The final adapter is the trained state of the last step: equal to the checkpoint's
    # tensors, and the training-time model with those tensors gives the same logits.
    checkpoint = load_file(str(run.result.run_dir / "checkpoints" / f"step-{STEPS:06d}" /
                               "trainable.safetensors"))
    assert set(checkpoint) == set(saved)
    assert all(torch.equal(checkpoint[k], saved[k]) for k in saved)
    rebuilt = rebuilt_from_checkpoint(run, root)
    assert torch.equal(logits_of(rebuilt, batch), first_logits)


# --------------------------------------------------------------------------- 3. merge


@pytest.mark.parametrize("lora_preset", ["high_capacity_moe", "balanced"])
def test_merged_export_equals_unmerged_adapter(runs, root, batch, base_logits, tmp_path,
                                               lora_preset):
    run = runs("lora", lora_preset)
    out = tmp_path / "merged"
    report = export_model(str(run.final), str(out), merge=True, root=root)
    assert report["merged"] is True
    files = {p.name for p in out.iterdir()}
    assert ADAPTER_WEIGHTS not in files and ADAPTER_CONFIG not in files
    assert {"README.md", "training_config.json", MODEL_INFO_NAME, "model.safetensors"} <= files
    assert set(report["files"]) == {p.name for p in out.iterdir() if p.is_file()}
    info = json.loads((out / MODEL_INFO_NAME).read_text())
    assert info["adapter"] is False
    assert info["merged_from"] == str(run.final)
    assert (out / "README.md").read_text() == (run.final / "README.md").read_text()
    assert json.loads((out / "training_config.json").read_text())["lora_preset"] == lora_preset

    merged = load_model(str(out), root=root)
    names = [n for n, _ in merged.model.named_parameters()]
    assert not any("lora_" in n or "base_layer" in n for n in names)
    assert type(merged.model).__name__ == "DeepseekOcr2ForConditionalGeneration"
    unmerged_logits = logits_of(load_model(str(run.final), root=root).model, batch)
    merged_logits = logits_of(merged.model, batch)
    assert torch.allclose(merged_logits, unmerged_logits, atol=1e-4, rtol=0), (
        (merged_logits - unmerged_logits).abs().max())
    assert (merged_logits - base_logits).abs().max() > 1e-3


# --------------------------------------------------------------------------- 4. overfit


OVERFIT_STEPS = 100


def test_tiny_model_overfits_eight_rendered_examples(dataset, root, tmp_path):
    config = training_config({
        "dataset": str(dataset), "out": str(tmp_path / "overfit"), "preset": "cpu_demo",
        "peft": "full", "max_steps": OVERFIT_STEPS, "batch_size": 8, "seed": 0,
        "learning_rate": 2e-3, "log_steps": 1, "eval_steps": OVERFIT_STEPS,
        "save_steps": OVERFIT_STEPS, "eval_samples": 8, "eval_split": "train",
        "max_new_tokens": 16})
    result = train(config, root=root, echo=lambda *_: None)
    assert result.status == "completed" and result.step == OVERFIT_STEPS
    losses = [r["loss"] for r in history(result.run_dir) if "loss" in r]
    assert len(losses) == OVERFIT_STEPS
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])

    evaluation = evaluate_model(str(result.final_model), str(dataset), split="train",
                                max_new_tokens=16, out=str(tmp_path / "evaluation"),
                                root=root)
    assert evaluation["samples"] == 8
    samples = [json.loads(line) for line in
               (tmp_path / "evaluation" / "train-samples.jsonl").read_text().splitlines()]
    assert sorted(s["reference"] for s in samples) == sorted(s for _, s in CORPUS)
    exact = [s for s in samples if s["prediction"].strip() == s["reference"].strip()]
    assert len(exact) >= 7, [(s["reference"], s["prediction"]) for s in samples]
    assert evaluation["rougeL"] >= 7 / 8


# --------------------------------------------------------------------------- 5. ROUGE


def test_rouge_keeps_accented_letters():
    scores = rouge("Le café était très bon", "le café était bon")
    assert scores["rouge1"] > 0.8
    assert scores["rouge1"] == pytest.approx(2 * 1.0 * 0.8 / 1.8, abs=1e-4)
    assert "était" in UnicodeTokenizer().tokenize("Le café était très bon")
    default = rouge_scorer.RougeScorer(["rouge1"]).score("Le café était très bon",
                                                         "le café était bon")
    assert default["rouge1"].fmeasure < scores["rouge1"]
    # The default tokenizer drops "é": "tait" would count as "était"; ours does not.
    assert rouge_scorer.RougeScorer(["rouge1"]).score("était", "tait")["rouge1"].fmeasure == 1
    assert rouge("était", "tait")["rouge1"] == 0
    assert rouge("était", "ÉTAIT")["rouge1"] == 1.0


def test_rouge_on_non_latin_scripts():
    chinese = rouge("今天天气很好", "今天天气不错")
    assert chinese["rouge1"] == pytest.approx(4 / 6, abs=1e-4)
    assert chinese["rouge2"] > 0 and chinese["rougeL"] > 0
    assert rouge_scorer.RougeScorer(["rouge1"]).score(
        "今天天气很好", "今天天气不错")["rouge1"].fmeasure == 0
    assert rouge("今天天气很好", "明年")["rouge1"] == 0
    assert rouge("привет большой мир", "привет мир")["rouge1"] > 0.7
    for text in ("Le café était très bon", "今天天气很好", "привет мир", "天気は良いです",
                 "plain words here"):
        assert rouge(text, text) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert mean_rouge([("a b c", "a b c"), ("a b c", "x y z")]) == {
        "rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5}
    assert mean_rouge([]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


# --------------------------------------------------------------------------- 6. run folder


VISION_COMPONENTS = ("sam encoder", "vision encoder", "projector", "view separator")


def test_run_folder_holds_everything(runs):
    run = runs("lora", "balanced")
    folder = run.result.run_dir
    metrics = json.loads((folder / "metrics.json").read_text())

    table = (folder / "parameters.txt").read_text().splitlines()
    rows = {}
    for line in table[1:]:
        match = re.match(r"(.+?)\s+([\d,]+)\s+([\d,]+)\s+(\S+)\s+(.+)$", line)
        assert match, line
        rows[match[1].strip()] = (int(match[2].replace(",", "")),
                                  int(match[3].replace(",", "")), match[5], match[4])
    for component in VISION_COMPONENTS:
        parameters, trainable, state, _ = rows[component]
        assert parameters > 0 and trainable == 0 and state == "frozen", component
    assert rows["adapters"][2] == "trainable" and rows["adapters"][1] > 0
    assert {r[3] for r in rows.values()} == {"float32"}  # quick_test: mixed_precision no
    assert rows["total"][:2] == (metrics["parameters_total"], metrics["parameters_trainable"])
    assert sum(r[0] for c, r in rows.items() if c != "total") == metrics["parameters_total"]

    saved_config = json.loads((folder / "training_config.json").read_text())
    assert saved_config["peft"] == "lora" and saved_config["lora_preset"] == "balanced"
    assert saved_config["max_steps"] == STEPS and saved_config["learning_rate"] == 1e-3

    assert metrics["status"] == "completed" and metrics["steps"] == STEPS
    assert 0 < metrics["parameters_trainable"] < metrics["parameters_total"]
    assert metrics["total_seconds"] > 0
    assert math.isfinite(metrics["best_eval_loss"]) and metrics["best_eval_loss"] > 0
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["best_eval_loss"]),
                                                  rel=1e-3)
    assert set(metrics["rouge"]) == {"rouge1", "rouge2", "rougeL"}
    assert all(0 <= v <= 1 for v in metrics["rouge"].values())

    records = history(folder)
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    for record in steps:
        for key in ("step", "loss", "lr", "grad_norm", "samples_per_second",
                    "tokens_per_second", "rss_mib"):
            assert isinstance(record[key], (int, float)) and math.isfinite(record[key]), key
        assert record["lr"] == pytest.approx(1e-3)
        assert record["samples_per_second"] > 0 and record["tokens_per_second"] > 0
        assert record["rss_mib"] > 0
        moe = record["moe"]
        assert list(moe) == ["model.language_model.layers.1.mlp.gate"]  # the one MoE layer
        for layer in moe.values():
            assert len(layer["expert_share"]) == 8
            assert sum(layer["expert_share"]) == pytest.approx(1.0, abs=1e-3)
            assert 0 < layer["router_entropy"] <= math.log(8) + 1e-6
    assert [r["step"] for r in evals] == [STEPS]
    scores = evals[0]["eval"]
    for key in ("eval_loss", "rouge1", "rouge2", "rougeL"):
        assert math.isfinite(scores[key])
    assert scores["eval_loss"] == metrics["best_eval_loss"]
    assert scores["samples"] == run.config.evaluation.eval_samples == 4

    samples = json.loads((folder / "eval_samples" / f"step-{STEPS:06d}.json").read_text())
    assert len(samples) == 4
    summaries = {f"row-{i}": s for i, (_, s) in enumerate(CORPUS)}
    for sample in samples:
        assert sample["reference"] == summaries[sample["id"]]
        assert isinstance(sample["prediction"], str)
        assert {"rouge1", "rouge2", "rougeL"} <= set(sample)

    checkpoint = folder / "checkpoints" / f"step-{STEPS:06d}"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["format_version"] == 1 and state["step"] == STEPS
    assert (checkpoint / "trainable.safetensors").is_file()
    assert (checkpoint / "training_state.pt").is_file()
    assert [p.name for p in (folder / "checkpoints").iterdir()] == [checkpoint.name]

    final = folder / "final"
    card = (final / "README.md").read_text()
    assert "RANDOM weights" in card and TINY in card
    info = json.loads((final / MODEL_INFO_NAME).read_text())
    assert info["randomly_initialized"] is True and info["adapter"] is True
    assert {ADAPTER_WEIGHTS, ADAPTER_CONFIG, "training_config.json"} <= {
        p.name for p in final.iterdir()}

    secret = re.compile(rb"hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9]{20,}")
    for path in folder.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert FAKE_TOKEN.encode() not in content, path
            assert not secret.search(content), path
    for config_file in (folder / "training_config.json", final / "training_config.json"):
        keys = json.loads(config_file.read_text())
        assert not [k for k in keys if re.search(r"token$|secret|password|api_key", k)]
