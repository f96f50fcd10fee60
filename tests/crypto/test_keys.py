"""Key wrapping: password and recovery code each open the key; nothing else does."""

from __future__ import annotations

import pytest

from letterlock.crypto import keys
from letterlock.errors import AuthenticationFailed, CryptoError

FAST = keys.KdfParams(memory_kib=1024, iterations=1, lanes=1)


def test_password_wrap_round_trip_and_wrong_password() -> None:
    pair = keys.KeyPair.generate()
    blob = keys.wrap_with_password(pair, "hunter2hunter2", FAST)
    assert keys.unwrap_with_password(blob, "hunter2hunter2", pair.key_id).public == pair.public
    with pytest.raises(AuthenticationFailed):
        keys.unwrap_with_password(blob, "hunter3hunter3", pair.key_id)


def test_kdf_parameters_travel_with_the_blob() -> None:
    pair = keys.KeyPair.generate()
    blob = keys.wrap_with_password(pair, "pw-pw-pw-pw", keys.KdfParams(2048, 2, 1))
    assert keys.unwrap_with_password(blob, "pw-pw-pw-pw", pair.key_id).key_id == pair.key_id


def test_recovery_code_is_forgiving_about_case_and_separators() -> None:
    pair = keys.KeyPair.generate()
    code = keys.new_recovery_code()
    assert len(code.replace("-", "")) == 40
    blob = keys.wrap_with_recovery_code(pair, code)
    typed = code.lower().replace("-", " ")
    assert keys.unwrap_with_recovery_code(blob, typed, pair.key_id).public == pair.public
    with pytest.raises(AuthenticationFailed):
        keys.unwrap_with_recovery_code(blob, keys.new_recovery_code(), pair.key_id)


def test_blob_cannot_move_between_accounts_or_purposes() -> None:
    a, b = keys.KeyPair.generate(), keys.KeyPair.generate()
    blob = keys.wrap_with_password(a, "same-password", FAST)
    with pytest.raises(AuthenticationFailed):
        keys.unwrap_with_password(blob, "same-password", b.key_id)
    with pytest.raises(CryptoError):
        keys.unwrap_with_recovery_code(blob, "same-password", a.key_id)
