"""The benchmark entry points run end to end on tiny settings, in-process (the task entry points: tasks_test.py)."""

import json


def test_bench_speed_smoke(tmp_path):
  """The --suite table at 32² with the tiny net (in-process, seconds): S = 1 and 2 seeds, rows with precision and path."""
  from cli_helpers import run_main
  out = tmp_path / "bench.json"
  run_main("bench_speed", ["--suite=smoke", "--seeds=1,2", "--precisions=bfloat16", "--conv_impls=rows",
                           "--torch=false", "--time_compile=false", f"--out={out}"])
  result = json.loads(out.read_text())
  assert len(result["single"]) == 0 and [r["seeds"] for r in result["seeds"]] == [1, 2]
  for row in result["seeds"]:
    assert (row["size"], row["precision"], row["conv_impl"]) == (32, "bfloat16", "rows")
    assert row["s_per_step"] > 0 and row["fits_steps_per_s"] > 0
  assert "| 32² | 1 (1) | bfloat16 | rows |" in result["table"]


def test_bench_grid_smoke(tmp_path, capsys):
  from cli_helpers import run_main
  out = tmp_path / "grid.json"
  run_main("bench_grid", ["--size=32", "--fits=2", "--num_steps=1", "--model=tiny", "--precision=bfloat16",
                          f"--json_out={out}"])
  rows = json.loads(out.read_text())["rows"]
  assert [(r["fits"], r["precision"], r["conv_impl"]) for r in rows] == [(2, "bfloat16", "rows")]
  assert all(r["fits_steps_per_s"] > 0 and r["estimate_bytes"] > 0 for r in rows)
  assert "fits·steps/s" in capsys.readouterr().out
