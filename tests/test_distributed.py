"""Two processes joined through jax.distributed on localhost share an experiment correctly."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config=configs/quickstart.py", "--config.seeds=2", "--config.train.max_epochs=3",
        "--config.data.n1_size=200", "--config.data.n2_size=200", "--config.data.test_size=100"]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def cells(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return {c["cell"]: c["learnability"]["per_seed"] for c in json.load(f)["cells"]}


@pytest.mark.slow
def test_two_local_processes_split_the_rows_and_match_one_process(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  single = str(tmp_path / "single")
  proc = subprocess.run([sys.executable, "-m", "learnjax.main", *ARGS, f"--workdir={single}"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  workdir = str(tmp_path / "multi")
  port = free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "learnjax.main", *ARGS, f"--workdir={workdir}", "--distributed",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err
  assert "process 0 of 2" in outs[0][0] and "process 1 of 2" in outs[1][0]
  # Rows 0 and 2 go to process 0, row 1 to process 1: each N1 trained once, by its owner.
  assert outs[0][0].count("on D1 (") == 2 and outs[1][0].count("on D1 (") == 1
  assert cells(workdir) == cells(single)
