"""Constants and helpers shared by tests (importable as ``support.env``)."""

from __future__ import annotations

from pathlib import Path

from letterlock import config as config_mod

# Argon2id at full strength costs ~0.2 s and 64 MiB per derivation; tests use a cheap
# setting so that hundreds of logins stay fast. Production defaults are in config.py.
FAST_KDF_ENV = {
    "LETTERLOCK_CRYPTO_ARGON2_MEMORY_KIB": "1024",
    "LETTERLOCK_CRYPTO_ARGON2_ITERATIONS": "1",
}
PASSWORD = "correct horse battery"


# Four-eyes approval of legal decisions is on by default; the suite decides matters in
# one step unless a test asks for it (tests/policy/test_four_eyes.py).
ONE_STEP_LEGAL_ENV = {"LETTERLOCK_LEGAL_FOUR_EYES": "off"}


def make_config(home: Path, **env: str) -> config_mod.Config:
    return config_mod.load(home, env={**FAST_KDF_ENV, **ONE_STEP_LEGAL_ENV, **env})
