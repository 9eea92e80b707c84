"""The T2 device-time estimate made from a benchmark's JSON."""

import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "t2_estimate.py")
_spec = importlib.util.spec_from_file_location("t2_estimate", _PATH)
t2_estimate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(t2_estimate)


def row(width, rate, default=True, seeds=5):
  return {"impl": "jax", "model": f"shallow_cnn_{width}", "seeds": seeds, "samples_per_s": rate,
          "default": default}


def test_missing_widths_are_interpolated_in_log_log():
  rates = t2_estimate.rates_from_benchmark(
      [row(16, 1e6), row(256, 1e5), row(1024, 1e4), row(16, 5e6, default=False),
       row(16, 9e9, seeds=1)], seeds=5, path="default")
  assert rates == {16: 1e6, 256: 1e5, 1024: 1e4}
  assert t2_estimate.interpolate(rates, 64) == (pytest.approx(10 ** 5.5), False)
  assert t2_estimate.interpolate(rates, 512) == (pytest.approx(10 ** 4.5), False)
  assert t2_estimate.interpolate(rates, 16) == (1e6, True)
  fastest = t2_estimate.rates_from_benchmark([row(16, 1e6), row(16, 5e6, default=False)], 5,
                                             "fastest")
  assert fastest == {16: 5e6}


def test_total_counts_one_n1_and_seven_n2_trainings_per_width(tmp_path, capsys):
  # Every width at 125,000 samples/s: one epoch of 5 seeds x 25,000 is 1 s; 10 epochs each.
  bench = tmp_path / "bench.json"
  bench.write_text(json.dumps({"rows": [row(16, 125_000), row(1024, 125_000)]}))
  assert t2_estimate.main([str(bench), "--epochs", "10"]) == 0
  out = capsys.readouterr().out
  assert "total: 560 s" in out   # 7 widths x (1 + 7) trainings x 10 epochs x 1 s
