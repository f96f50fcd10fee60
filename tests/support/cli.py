"""Running the real `letterlock` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.env import FAST_KDF_ENV, ONE_STEP_LEGAL_ENV


def letterlock(home: Path, *args: str, stdin: str = "",
               check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **FAST_KDF_ENV, **ONE_STEP_LEGAL_ENV}
    env.pop("LETTERLOCK_HOME", None)
    proc = subprocess.run([sys.executable, "-m", "letterlock", "--home", str(home), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"letterlock {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc
