"""The launchers deliver SLURM's early SIGTERM to the training processes.

Each launcher runs under bash with stand-ins for ``srun`` and ``python`` on the PATH: tiny scripts
that record their arguments and the signal they receive. The test sends SIGTERM to the launcher's
own process only, as ``#SBATCH --signal=B:TERM@...`` does (and ``kill`` of a local launcher), and
checks that every training process received it and that the launcher waited for it to finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A long-running process that records a SIGTERM and exits as learnjax does on one (143); other
# invocations (the local launcher's --gather_only and report) end at once.
STAND_IN = """#!/usr/bin/env bash
case "$*" in *--gather_only*|*learnjax.report*) exit 0 ;; esac
me=$$
echo "started $me $*" >> "$RECORD"
trap 'sleep 0.3; echo "TERM $me" >> "$RECORD"; exit 143' TERM
while :; do sleep 0.05; done
"""


@pytest.fixture
def stand_ins(tmp_path):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name in ("srun", "python"):
    (bin_dir / name).write_text(STAND_IN)
    (bin_dir / name).chmod(0o755)
  record = tmp_path / "record"
  record.touch()
  env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
         "RECORD": str(record)}
  return env, record


def _lines(record, prefix):
  return [line for line in record.read_text().splitlines() if line.startswith(prefix)]


def _terminate(script, args, env, record, processes):
  """Starts ``script``, waits for ``processes`` stand-ins, sends SIGTERM to the script only."""
  proc = subprocess.Popen(["bash", os.path.join(ROOT, "launch", script), *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 20
  while len(_lines(record, "started")) < processes and time.time() < deadline:
    time.sleep(0.05)
  assert len(_lines(record, "started")) == processes, record.read_text()
  proc.send_signal(signal.SIGTERM)
  output, _ = proc.communicate(timeout=20)
  return proc.returncode, output


def test_multinode_forwards_the_early_sigterm_to_srun_and_waits(stand_ins, tmp_path):
  env, record = stand_ins
  code, output = _terminate("slurm_multinode.sbatch", ["c.py", str(tmp_path / "w"), "--x=1"], env,
                            record, processes=1)
  [started] = _lines(record, "started")
  assert "-m learnjax.main --config=c.py" in started and "--distributed --x=1" in started
  assert _lines(record, "TERM") == [f"TERM {started.split()[1]}"], record.read_text()
  assert code == 143, output   # srun's status: the shell waited for the save to end


def test_array_task_is_the_training_process(stand_ins, tmp_path):
  env, record = stand_ins
  env = {**env, "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_ID": "2"}
  code, output = _terminate("slurm_array.sbatch", ["c.py", str(tmp_path / "w")], env, record,
                            processes=1)
  [started] = _lines(record, "started")
  assert "--task_index=2 --num_tasks=4" in started
  assert len(_lines(record, "TERM")) == 1 and code == 143, output


def test_local_launcher_forwards_sigterm_to_every_process(stand_ins, tmp_path):
  env, record = stand_ins
  env = {**env, "NUM_GPUS": "3"}
  _terminate("local_gpus.sh", ["c.py", str(tmp_path / "w")], env, record, processes=3)
  started = {line.split()[1] for line in _lines(record, "started")}
  assert {line.split()[1] for line in _lines(record, "TERM")} == started, record.read_text()
