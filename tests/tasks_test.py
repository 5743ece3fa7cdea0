"""Every task entry point: end to end on tiny settings, real-world inputs, and one-line errors.

Runs ``main`` in-process (absl flags parsed per test) to save the interpreter and JAX
start-up per case; ``test_bad_input_exits_non_zero_in_a_subprocess`` checks the
real exit status and stderr once.
"""

import json
import os
import re
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest
from absl import flags
from PIL import Image

import dipjax
from dipjax import presets

from cli_helpers import error_of, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ("denoise", "deblock", "super_resolution", "inpaint", "restore", "flash_no_flash")
FLAGS = flags.FLAGS


def save(path, array, mode=None):
  arr = np.asarray(array)
  if arr.dtype != np.uint8 and arr.dtype != np.uint16:
    arr = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr, mode=mode).save(path)
  return str(path)


def smooth_image(h, w, c=3, seed=0):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  chans = [0.5 + 0.4 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
           for fx, fy, ph in rng.uniform(0.5, 2.0, (c, 3))]
  return np.stack(chans, -1).astype(np.float32)


EXPECTED = {"input.png", "output.png", "ema.png", "stopped.png", "ensemble.png", "ensemble_ema.png", "comparison.png",
            "curves.png", "metrics.json", "clean.png"}
MASKED = {"mask.png"}
BASELINES = {"denoise": {"nlm", "tv", "wavelet"}, "deblock": {"nlm", "tv", "wavelet"},
             "super_resolution": {"bicubic"}, "inpaint": {"biharmonic"}, "restore": {"biharmonic"},
             "flash_no_flash": {"nlm"}}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_runs_end_to_end_and_writes_every_file(task, tmp_path, capsys):
  out = tmp_path / task
  run_main(task, ["--preset=tiny", "--seeds=2", "--steps=6", "--chunk=4", "--save_every=3", "--baselines",
                  f"--out_dir={out}"])
  stdout = capsys.readouterr().out
  files = set(os.listdir(out))
  expected = EXPECTED | {f"baseline_{b}.png" for b in BASELINES[task]} | {"steps"}
  if task in ("inpaint", "restore"):
    expected |= MASKED
  assert expected <= files, expected - files
  assert sorted(os.listdir(out / "steps")) == ["output_000003.png", "output_000006.png"]
  assert not [f for f in files if f.startswith(".tmp-")]
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["task"] == task and metrics["preset"]["model"] == "tiny" and metrics["preset"]["steps"] == 6
  assert np.asarray(metrics["curves"]["loss"]).shape == (2, 6)
  for key in ("jax", "flax", "optax"):
    assert metrics["versions"][key]
  assert metrics["compile_s"] > 0 and metrics["wall_s"] >= metrics["run_s"] > 0
  summary = metrics["summary"]
  for name in ("input", "output", "ema", "ensemble", "ensemble_ema") + tuple(f"baseline_{b}" for b in BASELINES[task]):
    assert np.isfinite(summary["psnr"][name]) and -1 <= summary["ssim"][name] <= 1, name
  assert 1 <= summary["best_step_per_seed"][0] <= 6
  if task == "super_resolution":
    assert set(summary["psnr_y"]) >= {"output", "baseline_bicubic"}
  stop = summary["stopping"]
  assert stop["primary"] == "emv" and set(stop) >= {"emv", "wmv"}
  assert ("discrepancy" in stop) == (task == "denoise")
  assert len(stop["emv"]["detected_step"]) == 2 and len(stop["emv"]["psnr_best"]) == 2
  size = Image.open(out / "output.png").size
  assert size == Image.open(out / "clean.png").size == (48, 48)
  assert "preset 'tiny'" in stdout and "steps/s" in stdout and "ETA" in stdout and "6/6" in stdout
  assert "results in" in stdout


def test_chunked_run_equals_one_chunk(tmp_path):
  curves = []
  for chunk in (3, 8):
    out = tmp_path / f"chunk{chunk}"
    run_main("denoise", ["--preset=tiny", "--steps=8", f"--chunk={chunk}", f"--out_dir={out}"])
    curves.append(json.loads((out / "metrics.json").read_text())["curves"])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "chunk3" / "output.png")),
                                  np.asarray(Image.open(out / "output.png")))
  assert curves[0] == curves[1]


def test_early_stop_ends_the_run_and_keeps_the_detected_output(tmp_path, capsys):
  out = tmp_path / "es"
  run_main("denoise", ["--preset=tiny", "--steps=60", "--chunk=5", "--stop_window=5", "--stop_patience=3",
                       "--early_stop", f"--out_dir={out}"])
  stdout = capsys.readouterr().out
  metrics = json.loads((out / "metrics.json").read_text())
  emv = metrics["summary"]["stopping"]["emv"]
  assert emv["fired"] == [True] and metrics["steps_run"] < 60 and "early stop: emv fired" in stdout
  assert metrics["steps_run"] - emv["fired_at"][0] < 5  # ended at the end of the chunk where it fired
  assert emv["psnr_detected"][0] == pytest.approx(metrics["summary"]["psnr"]["stopped"], abs=0.6)
  assert np.asarray(metrics["curves"]["loss"]).shape == (1, metrics["steps_run"])
  assert "PSNR detected" in stdout


def test_a_diverged_run_ends_with_a_message_and_keeps_its_last_good_output(tmp_path, capsys):
  out = tmp_path / "div"
  # lr = 1e38: the first step is finite (parameters ~1e38), every later one overflows.
  message = error_of("denoise", ["--preset=tiny", "--steps=40", "--chunk=5", "--lr=1e38", "--max_nonfinite=5",
                                 f"--out_dir={out}"])
  assert "diverged: 9 non-finite steps in a row" in message and "learning rate" in message
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["steps_run"] == 10 and metrics["num_nonfinite"] == [9]
  assert np.asarray(Image.open(out / "output.png")).shape == (48, 48, 3)  # written from the last good state
  emv = metrics["summary"]["stopping"]["emv"]
  assert np.isfinite(emv["psnr_last"][0]) and emv["psnr_best"][0] >= emv["psnr_last"][0]  # the last good step


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
  from dipjax import runner
  args = ["--preset=tiny", "--steps=8", "--chunk=2", "--seeds=2", "--checkpoint_every=4"]
  run_main("denoise", args + [f"--out_dir={tmp_path / 'whole'}"])
  real_progress = runner.format_progress

  def killed_at_6(progress, **kwargs):
    if progress.done == 6:
      raise KeyboardInterrupt  # as if the process were killed after step 6 (checkpoint at step 4)
    return real_progress(progress, **kwargs)

  monkeypatch.setattr(runner, "format_progress", killed_at_6)
  with pytest.raises(KeyboardInterrupt):
    run_main("denoise", args + [f"--out_dir={tmp_path / 'killed'}"])
  monkeypatch.setattr(runner, "format_progress", real_progress)
  assert not (tmp_path / "killed" / "output.png").exists()
  run_main("denoise", args + ["--resume", f"--out_dir={tmp_path / 'killed'}"])
  assert "resumed from" in capsys.readouterr().out
  for name in ("output.png", "ema.png", "ensemble.png", "stopped.png"):
    assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes(), name
  whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
  resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
  assert whole["curves"] == resumed["curves"] and whole["summary"] == resumed["summary"]
  # A checkpoint of another configuration is refused, naming the difference.
  message = error_of("denoise", args + ["--resume", "--lr=0.02", f"--out_dir={tmp_path / 'killed'}"])
  assert "different run" in message and "learning_rate" in message
  assert "no checkpoint" in error_of("denoise", args + ["--resume", f"--out_dir={tmp_path / 'empty'}"])
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "checkpoint.msgpack").write_bytes(b"\x00garbage")
  assert "not a dipjax checkpoint" in error_of("denoise", args + ["--resume", f"--out_dir={tmp_path / 'bad'}"])


def test_tiled_run_blends_tiles_back_to_the_full_image(tmp_path, capsys):
  image = save(tmp_path / "c.png", smooth_image(48, 64))
  out = tmp_path / "tiled"
  run_main("denoise", ["--preset=tiny", "--steps=4", "--tile=32", "--tile_overlap=8", "--seeds=2", f"--clean={image}",
                       f"--out_dir={out}"])
  assert "6 tiles of 32x32 (overlap 8) x 2 seed(s) = 12 fits" in capsys.readouterr().out
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["tiles"] == 6 and metrics["canvas"] == [32, 32]
  assert np.asarray(metrics["curves"]["psnr_clean"]).shape == (2, 4)  # per seed, over all tiles
  for name in ("output.png", "ema.png", "stopped.png", "ensemble.png"):
    assert Image.open(out / name).size == (64, 48), name
  assert np.isfinite(metrics["summary"]["psnr"]["output"])
  assert "pixel-aligned" in error_of("super_resolution", ["--preset=tiny", "--tile=32", "--tile_overlap=8",
                                                                               f"--out_dir={tmp_path / 'sr'}"])
  assert "larger than the 64x48 image" in error_of("denoise", ["--preset=tiny", "--tile=50", f"--clean={image}",
                                                              f"--out_dir={tmp_path / 'x'}"])


def test_odd_size_gray_16_bit_image_comes_back_at_its_size_and_mode(tmp_path, capsys):
  # 37x53 gray 16-bit: an odd, non-square size and a 16-bit mode, both kept in the output.
  clean = smooth_image(37, 53, 1)
  path = tmp_path / "gray16.png"
  Image.fromarray(np.round(clean[..., 0] * 65535).astype(np.int32), mode="I").convert("I;16").save(path)
  out = tmp_path / "run"
  run_main("inpaint", ["--preset=tiny", "--steps=3", f"--clean={path}", f"--out_dir={out}"])
  result = Image.open(out / "output.png")
  assert result.size == (53, 37) and result.mode == "I;16"
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["image_size"] == [37, 53] and metrics["channels"] == 1


def test_reflection_canvas_when_the_network_needs_a_multiple(tmp_path):
  image = smooth_image(45, 70)
  out = tmp_path / "run"
  run_main("restore", ["--preset=tiny", "--steps=3", f"--clean={save(tmp_path / 'c.png', image)}",
                       f"--out_dir={out}"])
  metrics = json.loads((out / "metrics.json").read_text())
  assert metrics["canvas"] == [45, 70]  # tiny net has skips everywhere: no padding needed
  # A net without skips needs sides that are multiples of 2^levels (the deblock preset's: 32): a reflection canvas.
  no_skips = dipjax.skip_tiny(channels_skip=(0, 0))
  lines = []
  r = dipjax.restore(jax.random.key(0), image[:42, :42], None, presets.get("deblock", "tiny", steps=1),
                     model=no_skips, log=lines.append)
  assert r.info["canvas"] == [44, 44] and r.output.shape == (1, 42, 42, 3)  # multiples of 4 (2 levels), cropped back
  assert any("canvas" in line for line in lines)


def test_rgba_input_drops_alpha_with_a_warning(tmp_path, capsys):
  rgba = np.concatenate([smooth_image(40, 40), np.full((40, 40, 1), 0.5, np.float32)], -1)
  path = save(tmp_path / "rgba.png", rgba)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run_main("denoise", ["--preset=tiny", "--steps=2", f"--image={path}", f"--out_dir={tmp_path / 'o'}"])
  assert any("alpha channel" in str(w.message) for w in caught)
  assert Image.open(tmp_path / "o" / "output.png").mode == "RGB"
  metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
  assert metrics["summary"]["psnr"] == {}  # no ground truth: no PSNR against it
  assert len(metrics["summary"]["final_psnr_target"]) == 1


def test_real_inputs_of_each_task(tmp_path, capsys):
  hr = smooth_image(64, 64)
  clean = save(tmp_path / "clean.png", hr)
  low = save(tmp_path / "low.png", hr[::4, ::4])
  mask = np.ones((64, 64), np.uint8) * 255
  mask[20:40, 20:40] = 0
  mask_path = save(tmp_path / "mask.png", mask)
  run_main("super_resolution", ["--preset=tiny", "--steps=2", f"--image={low}", f"--clean={clean}",
                                f"--out_dir={tmp_path / 'sr'}"])
  assert Image.open(tmp_path / "sr" / "output.png").size == (64, 64)
  assert Image.open(tmp_path / "sr" / "input.png").size == (16, 16)
  run_main("inpaint", ["--preset=tiny", "--steps=2", f"--image={clean}", f"--mask={mask_path}",
                       f"--out_dir={tmp_path / 'in'}"])
  m = json.loads((tmp_path / "in" / "metrics.json").read_text())
  assert abs(m["source"]["known_fraction"] - (1 - 400 / 4096)) < 1e-6
  run_main("flash_no_flash", ["--preset=tiny", "--steps=2", f"--image={clean}", f"--flash={clean}",
                              f"--out_dir={tmp_path / 'fl'}"])
  assert Image.open(tmp_path / "fl" / "output.png").size == (64, 64)


def test_bad_inputs_give_one_line_errors(tmp_path):
  good = save(tmp_path / "good.png", smooth_image(48, 48))
  tiny = save(tmp_path / "tiny.png", smooth_image(20, 40))
  text = tmp_path / "text.png"
  text.write_text("not an image")
  out = f"--out_dir={tmp_path / 'out'}"
  base = ["--preset=tiny", "--steps=1", out]
  assert "does not exist" in error_of("denoise", base + [f"--image={tmp_path / 'missing.png'}"])
  assert "not a readable image" in error_of("denoise", base + [f"--image={text}"])
  assert "at least 32x32" in error_of("deblock", base + [f"--image={tiny}"])
  assert "at least 32x32" in error_of("denoise", base + [f"--clean={tiny}"])
  small_mask = save(tmp_path / "m_small.png", np.full((30, 30), 255, np.uint8))
  assert "pass a mask of the image's size" in error_of("inpaint", base + [f"--clean={good}", f"--mask={small_mask}"])
  gray_mask = save(tmp_path / "m_gray.png", np.full((48, 48), 128, np.uint8))
  assert "not binary" in error_of("restore", base + [f"--clean={good}", f"--mask={gray_mask}"])
  assert "needs its `mask`" in error_of("inpaint", base + [f"--image={good}"])
  black = save(tmp_path / "m_black.png", np.zeros((48, 48), np.uint8))
  assert "no known pixel" in error_of("inpaint", base + [f"--clean={good}", f"--mask={black}"])
  assert "`--factor` must be one of [2, 4, 6, 8], got 3" in error_of("super_resolution", base + ["--factor=3"])
  assert "`kernel` must be one of" in error_of("super_resolution", base + ["--kernel=cubic"])
  assert "needs `flash`" in error_of("flash_no_flash", base + [f"--image={good}"])
  other = save(tmp_path / "other.png", smooth_image(40, 48))
  assert "same size" in error_of("flash_no_flash", base + [f"--image={good}", f"--flash={other}"])
  assert "same size" in error_of("denoise", base + [f"--image={good}", f"--clean={other}"])
  with pytest.raises(flags.UnrecognizedFlagError):  # a flag the script does not read is not accepted
    run_main("denoise", base + ["--factor=4"])
  assert "unknown preset 'paper_x4' for denoise" in error_of("denoise", base + ["--preset=paper_x4"])
  blocker = tmp_path / "file"
  blocker.write_text("a file where a folder should be")
  assert "not writable" in error_of("denoise", ["--preset=tiny", f"--out_dir={blocker / 'sub'}"])
  assert not os.path.exists(tmp_path / "out" / "output.png")  # nothing was run


def test_bad_input_exits_non_zero_in_a_subprocess(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "experiments.super_resolution", "--preset=tiny", "--factor=5",
                         f"--out_dir={tmp_path / 'x'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode != 0
  last = proc.stderr.strip().splitlines()[-1]
  assert last == "error: `--factor` must be one of [2, 4, 6, 8], got 5." and "Traceback" not in proc.stderr
  assert not (tmp_path / "x").exists() or not os.listdir(tmp_path / "x")  # nothing written


@pytest.mark.parametrize("script,flag", [("reproduce_denoising", "--tile=32"), ("sweep", "--resume"),
                                         ("denoise", "--factor=4")])
def test_a_flag_the_script_does_not_read_is_refused(script, flag, tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", f"experiments.{script}", flag, f"--out_dir={tmp_path / 'x'}"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0 and f"Unknown command line flag '{flag[2:].split('=')[0]}'" in proc.stderr
  assert not (tmp_path / "x").exists()


def test_default_preset_is_cpu_on_cpu_and_paper_on_accelerators():
  from dipjax import presets
  for task in TASKS:
    assert presets.default_name(task, "cpu") == "cpu"
    assert presets.default_name(task, "gpu").startswith("paper")
  assert presets.default_name("denoise", "gpu") == "paper"


def test_two_processes_with_the_same_seed_agree_bit_for_bit(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  for run in ("a", "b"):
    proc = subprocess.run([sys.executable, "-m", "experiments.denoise", "--preset=tiny", "--steps=10", "--seeds=2",
                           "--seed=7", f"--out_dir={tmp_path / run}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # A quiet start: no absl/jax INFO lines (e.g. the missing libtpu.so note) before the run's own output.
    assert "libtpu" not in proc.stderr + proc.stdout and not re.search(r"^I\d{4}", proc.stderr, re.M), proc.stderr
    assert proc.stdout.startswith("denoise preset 'tiny'")
  for name in ("input.png", "output.png", "ema.png", "ensemble.png", "stopped.png"):
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
  curves = [json.loads((tmp_path / r / "metrics.json").read_text())["curves"] for r in ("a", "b")]
  assert curves[0] == curves[1]


def test_a_run_that_will_not_fit_in_memory_is_refused_before_it_runs(tmp_path, monkeypatch):
  import dipjax
  monkeypatch.setattr(dipjax.memory, "available_bytes", lambda device=None: 1_000_000)
  message = error_of("denoise", ["--preset=tiny", "--steps=2", f"--out_dir={tmp_path / 'o'}"])
  assert "GiB but only" in message and "fewer seeds" in message and "crop" in message
  assert not (tmp_path / "o" / "output.png").exists()
  monkeypatch.setattr(dipjax.memory, "estimate_bytes", lambda *a, **k: 10 ** 14)
  monkeypatch.setattr(dipjax.memory, "available_bytes", lambda device=None: 10 ** 12)
  image = save(tmp_path / "big.png", smooth_image(300, 300))
  message = error_of("denoise", ["--preset=tiny", "--steps=2", f"--image={image}", f"--out_dir={tmp_path / 'o'}"])
  assert "needs about 93132.3 GiB" in message  # refused from the estimate, before compiling
