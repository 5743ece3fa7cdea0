"""The experiment entry points run end to end on tiny settings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, "-m"] + args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)


def test_denoise_tiny_preset_writes_every_file(tmp_path):
  out = tmp_path / "run"
  proc = _run(["experiments.denoise", "--preset=tiny", "--seeds=2", f"--out_dir={out}"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in ("noisy.png", "output.png", "ema.png", "ensemble.png", "clean.png", "comparison.png", "metrics.json"):
    assert (out / name).is_file(), name
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["preset"]["model"] == "tiny" and metrics["seeds"] == 2
  assert len(metrics["curves"]["loss"]) == 2 and len(metrics["curves"]["loss"][0]) == 20
  assert np.isfinite(metrics["summary"]["psnr_noisy"])
  assert Image.open(out / "output.png").size == (48, 48)
  assert Image.open(out / "comparison.png").size[0] == 5 * 48 + 4 * 4  # noisy, output, EMA, ensemble, clean
  assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]
  assert "step 20/20" in proc.stdout and "steps/s" in proc.stdout and "ETA" in proc.stdout


def test_denoise_progress_chunks_do_not_change_the_result(tmp_path):
  curves = []
  for chunk in (7, 20):
    out = tmp_path / f"chunk{chunk}"
    proc = _run(["experiments.denoise", "--preset=tiny", f"--chunk={chunk}", f"--out_dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    curves.append(json.loads((out / "metrics.json").read_text())["curves"])
    progress = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert len(progress) == (3 if chunk == 7 else 1)
  assert curves[0] == curves[1]


def test_denoise_bad_input_exits_non_zero_with_one_line(tmp_path):
  proc = _run(["experiments.denoise", "--preset=tiny", f"--image={tmp_path / 'missing.png'}",
               f"--out_dir={tmp_path / 'x'}"], tmp_path)
  assert proc.returncode != 0
  assert "does not exist" in proc.stderr.strip().splitlines()[-1]
  bad = tmp_path / "not_an_image.png"
  bad.write_text("hello")
  proc = _run(["experiments.denoise", "--preset=tiny", f"--image={bad}", f"--out_dir={tmp_path / 'x'}"], tmp_path)
  assert proc.returncode != 0 and "not a readable image" in proc.stderr


def test_bench_speed_smoke(tmp_path):
  out = tmp_path / "bench.json"
  proc = _run(["experiments.bench_speed", "--sizes=32", "--seed_sizes=32", "--seeds=1,2", "--steps=1",
               "--repeats=1", "--torch=false", f"--out={out}"], tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert len(result["single"]) == 1 and len(result["seeds"]) == 2
  assert result["seeds"][1]["seeds"] == 2 and result["single"][0]["s_per_step"] > 0
