"""The estimator's table for DeepSeek-OCR-2 per PEFT method, LoRA preset and training preset,
as docs/training.md shows it: each cell from ``deepsynth estimate ... --json`` (offline).

    .venv/bin/python benchmarks/estimate_table.py            # the Markdown table
    .venv/bin/python benchmarks/estimate_table.py --json     # every estimate's figures
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ROWS = (("lora", "standard"), ("lora", "tiny_data"), ("lora", "balanced"),
        ("lora", "router_focused"), ("lora", "high_capacity_moe"), ("dora", "balanced"),
        ("adalora", "balanced"), ("qlora", "balanced"), ("full", None))
PRESETS = ("default", "low_memory", "high_memory")
STEP_GPUS = ("A100-80GB", "H100")


def estimate(peft: str, lora_preset: str | None, preset: str) -> dict:
    command = [sys.executable, "-m", "deepsynth", "estimate", "--model", "deepseek-ocr-2",
               "--peft", peft, "--preset", preset, "--json"]
    command += ["--lora-preset", lora_preset] if lora_preset else []
    command += [part for gpu in STEP_GPUS for part in ("--gpu", gpu)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def smallest(fits: dict[str, bool]) -> str:
    sizes = [size for size, ok in fits.items() if ok]
    return f"{sizes[0]} GB" if sizes else "none listed"


def cell(result: dict) -> str:
    return (f"{result['peak_gib']:.1f} / {result['needed_on_gpu_gib']:.1f} GiB, "
            f"{smallest(result['fits'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    table = {(peft, lora, preset): estimate(peft, lora, preset)
             for peft, lora in ROWS for preset in PRESETS}
    if args.json:
        print(json.dumps([{"peft": p, "lora_preset": l, "preset": t, **r}
                          for (p, l, t), r in table.items()], indent=2))
        return
    print("| PEFT, LoRA preset | trainable | " + " | ".join(f"`{p}`" for p in PRESETS)
          + " | step, `default` (" + ", ".join(STEP_GPUS) + ") |")
    print("|---" * (len(PRESETS) + 3) + "|")
    for peft, lora in ROWS:
        first = table[(peft, lora, PRESETS[0])]
        steps = ", ".join(f"~{t['seconds']:g} s" for t in first["step_time"])
        name = f"{peft} `{lora}`" if lora else f"{peft} (the decoder)"
        print(f"| {name} | {first['trainable_parameters'] / 1e6:,.1f}M | "
              + " | ".join(cell(table[(peft, lora, p)]) for p in PRESETS) + f" | {steps} |")


if __name__ == "__main__":
    main()
