"""Artifacts are signed with the user's key and never unpickled unless the signature verifies (or trust=True)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest
from sklearn.linear_model import LogisticRegression

from vigil.errors import ArtifactError, InvalidParameterError, SecretKeyError, UntrustedArtifactError
from vigil.store import signing
from vigil.store.artifacts import ARTIFACT_DIR, load_artifact, save_artifact, verify_artifact

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


class _Trap:
    """Unpickling this creates ``marker``: a stand-in for any code a hostile pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    """A private config dir for one test (the signing key file lands in it)."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    monkeypatch.delenv(signing.SIGNING_KEY_ENV, raising=False)
    return folder


def _assert_key_not_shown(err: Exception, key: bytes) -> None:
    text = str(err) + json.dumps(getattr(err, "to_dict", dict)(), default=str)
    for form in (key.hex(), key.hex().upper(), repr(key), str(key)):
        assert form not in text


def _pkl(home: Path, sha: str) -> Path:
    return home / ARTIFACT_DIR / f"{sha}.pkl"


def _sig(home: Path, sha: str) -> Path:
    return home / ARTIFACT_DIR / f"{sha}.sig"


# -- signing and loading -----------------------------------------------------------------------------------


def test_round_trip_under_one_key_loads_a_working_model(tmp_path):
    clf = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    saved = save_artifact(tmp_path, clf, key=KEY_A)
    record = json.loads(_sig(tmp_path, saved.sha256).read_text())
    assert record == {"alg": "hmac-sha256", "key_id": signing.key_id(KEY_A), "signature": saved.signature}
    assert saved.key_id == signing.key_id(KEY_A)
    assert saved.sha256 == hashlib.sha256(_pkl(tmp_path, saved.sha256).read_bytes()).hexdigest()
    assert verify_artifact(tmp_path, saved.sha256, key=KEY_A).verified
    loaded = load_artifact(tmp_path, saved.sha256, key=KEY_A)
    assert loaded.predict([[0.0], [3.0]]).tolist() == [0, 1]


def test_default_key_is_the_users_key_file(tmp_path, config):
    saved = save_artifact(tmp_path / "home", [1, 2, 3])
    assert saved.key_id == signing.key_id(signing.signing_key())
    assert load_artifact(tmp_path / "home", saved.sha256) == [1, 2, 3]
    assert (config / "vigil" / "signing.key").is_file()


def test_other_key_refuses_before_unpickling_and_trust_runs_it(tmp_path):
    marker = tmp_path / "ran"
    saved = save_artifact(tmp_path / "home", _Trap(marker), key=KEY_A)
    assert not marker.exists()
    with pytest.raises(UntrustedArtifactError) as info:
        load_artifact(tmp_path / "home", saved.sha256, key=KEY_B)
    err = info.value
    assert not marker.exists()
    assert err.code == "untrusted_artifact"
    assert err.details["reason"] == "other_key"
    assert err.details["signed_by"] == signing.key_id(KEY_A) and err.details["key_id"] == signing.key_id(KEY_B)
    assert signing.key_id(KEY_A) in str(err) and signing.key_id(KEY_B) in str(err)
    assert "trust=True" in str(err) and "--trust" in str(err) and "re-register" in str(err)
    _assert_key_not_shown(err, KEY_A)
    _assert_key_not_shown(err, KEY_B)
    load_artifact(tmp_path / "home", saved.sha256, key=KEY_B, trust=True)
    assert marker.exists()


def test_verify_artifact_reads_bytes_and_never_unpickles(tmp_path):
    marker = tmp_path / "ran"
    saved = save_artifact(tmp_path, _Trap(marker), key=KEY_A)
    mine = verify_artifact(tmp_path, saved.sha256, key=KEY_A)
    theirs = verify_artifact(tmp_path, saved.sha256, key=KEY_B)
    assert (mine.verified, mine.reason, mine.signed_by) == (True, "verified", signing.key_id(KEY_A))
    assert (theirs.verified, theirs.reason, theirs.key_id) == (False, "other_key", signing.key_id(KEY_B))
    assert not marker.exists()


_LOAD_IN_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from vigil.errors import VigilError
    from vigil.store.artifacts import load_artifact
    try:
        load_artifact(Path(sys.argv[1]), sys.argv[2])
        print("loaded")
    except VigilError as err:
        print(err.code, err.details.get("reason"))
""")


def _load_in_child(home: Path, sha: str, config_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != signing.SIGNING_KEY_ENV}
    env["XDG_CONFIG_HOME"] = str(config_dir)
    done = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, str(home), sha], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_another_users_process_refuses_what_this_user_signed(tmp_path, config):
    marker = tmp_path / "ran"
    home = tmp_path / "home"
    saved = save_artifact(home, _Trap(marker))
    assert _load_in_child(home, saved.sha256, tmp_path / "someone-else") == "untrusted_artifact other_key"
    assert not marker.exists()
    assert _load_in_child(home, saved.sha256, config) == "loaded"
    assert marker.exists()


# -- tampering ---------------------------------------------------------------------------------------------


def test_swapped_bytes_renamed_to_their_own_sha_are_refused(tmp_path):
    """An attacker can recompute the hash and rename the file, and copy the old signature, but cannot sign."""
    marker = tmp_path / "ran"
    saved = save_artifact(tmp_path, [1, 2, 3], key=KEY_A)
    evil = cloudpickle.dumps(_Trap(marker))
    evil_sha = hashlib.sha256(evil).hexdigest()
    _pkl(tmp_path, evil_sha).write_bytes(evil)
    _sig(tmp_path, evil_sha).write_bytes(_sig(tmp_path, saved.sha256).read_bytes())
    with pytest.raises(UntrustedArtifactError) as info:
        load_artifact(tmp_path, evil_sha, key=KEY_A)
    assert info.value.details["reason"] == "bad_signature"
    assert "changed after signing" in str(info.value)
    assert not marker.exists()


def test_a_signature_forged_under_another_key_is_refused(tmp_path):
    marker = tmp_path / "ran"
    saved = save_artifact(tmp_path, _Trap(marker), key=KEY_A)
    forged = {"alg": "hmac-sha256", "key_id": signing.key_id(KEY_A),
              "signature": signing.sign(_pkl(tmp_path, saved.sha256).read_bytes(), KEY_B)}
    _sig(tmp_path, saved.sha256).write_text(json.dumps(forged))
    assert verify_artifact(tmp_path, saved.sha256, key=KEY_A).reason == "bad_signature"
    with pytest.raises(UntrustedArtifactError):
        load_artifact(tmp_path, saved.sha256, key=KEY_A)
    assert not marker.exists()


def test_deleted_signature_is_refused_as_not_signed(tmp_path):
    marker = tmp_path / "ran"
    saved = save_artifact(tmp_path, _Trap(marker), key=KEY_A)
    _sig(tmp_path, saved.sha256).unlink()
    with pytest.raises(UntrustedArtifactError) as info:
        load_artifact(tmp_path, saved.sha256, key=KEY_A)
    assert info.value.details["reason"] == "not_signed"
    assert "is not signed" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"alg": "md5", "key_id": "x", "signature": "y"}'])
def test_a_signature_file_that_is_not_one_is_refused(tmp_path, content):
    saved = save_artifact(tmp_path, [1], key=KEY_A)
    _sig(tmp_path, saved.sha256).write_bytes(content)
    with pytest.raises(UntrustedArtifactError) as info:
        load_artifact(tmp_path, saved.sha256, key=KEY_A)
    assert info.value.details["reason"] == "unreadable_signature"


def test_corrupt_bytes_are_an_artifact_error_even_when_trusted(tmp_path):
    saved = save_artifact(tmp_path, list(range(100)), key=KEY_A)
    path = _pkl(tmp_path, saved.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    for trust in (False, True):
        with pytest.raises(ArtifactError) as info:
            load_artifact(tmp_path, saved.sha256, key=KEY_A, trust=trust)
        assert type(info.value) is ArtifactError and info.value.code == "artifact_error"
        assert "corrupt" in str(info.value)
    with pytest.raises(ArtifactError, match="corrupt"):
        verify_artifact(tmp_path, saved.sha256, key=KEY_A)


def test_missing_artifact_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="missing") as info:
        load_artifact(tmp_path, "0" * 64, key=KEY_A)
    assert info.value.code == "artifact_error"


@pytest.mark.parametrize("name", ["../../etc/passwd", "A" * 64, "0" * 63, ""])
def test_an_artifact_name_that_is_not_a_sha256_is_refused(tmp_path, name):
    with pytest.raises(InvalidParameterError) as info:
        load_artifact(tmp_path, name, key=KEY_A, trust=True)
    assert info.value.field == "sha256"


def test_resaving_under_another_key_makes_it_the_signer_without_rewriting_the_artifact(tmp_path):
    first = save_artifact(tmp_path, {"w": [1.0]}, key=KEY_A)
    inode = _pkl(tmp_path, first.sha256).stat().st_ino
    again = save_artifact(tmp_path, {"w": [1.0]}, key=KEY_A)
    second = save_artifact(tmp_path, {"w": [1.0]}, key=KEY_B)
    assert first.sha256 == again.sha256 == second.sha256
    assert _pkl(tmp_path, first.sha256).stat().st_ino == inode
    assert verify_artifact(tmp_path, first.sha256, key=KEY_B).verified
    assert verify_artifact(tmp_path, first.sha256, key=KEY_A).reason == "other_key"


def test_saving_again_repairs_a_damaged_copy(tmp_path):
    saved = save_artifact(tmp_path, [4, 5], key=KEY_A)
    _pkl(tmp_path, saved.sha256).write_bytes(b"garbage")
    save_artifact(tmp_path, [4, 5], key=KEY_A)
    assert load_artifact(tmp_path, saved.sha256, key=KEY_A) == [4, 5]


def test_a_model_whose_library_is_missing_names_it(tmp_path, monkeypatch):
    (tmp_path / "gone_model_lib.py").write_text("class Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_model_lib

    saved = save_artifact(tmp_path / "home", gone_model_lib.Model(), key=KEY_A)
    monkeypatch.delitem(sys.modules, "gone_model_lib")
    (tmp_path / "gone_model_lib.py").unlink()
    with pytest.raises(ArtifactError, match="gone_model_lib.*not installed") as info:
        load_artifact(tmp_path / "home", saved.sha256, key=KEY_A)
    assert info.value.code == "artifact_error"


# -- the signing key ---------------------------------------------------------------------------------------


def test_key_file_is_created_private_and_reused(config):
    old = os.umask(0)  # even with no umask to help, the key is never readable by others
    try:
        key = signing.signing_key()
    finally:
        os.umask(old)
    path = config / "vigil" / "signing.key"
    assert path == signing.key_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes() == key and len(key) == 32
    assert signing.signing_key() == key
    assert [p.name for p in path.parent.iterdir()] == ["signing.key"]


def test_env_key_wins_over_the_key_file(config, monkeypatch):
    from_file = signing.signing_key()
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, "5a" * 40)
    assert signing.signing_key() == bytes.fromhex("5a" * 40) != from_file


@pytest.mark.parametrize("value", ["zz" * 32, "ab" * 31, "", "ab" * 32 + "a"])
def test_a_bad_env_key_is_a_key_error_that_shows_the_expected_form(config, monkeypatch, value):
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, value)
    with pytest.raises(SecretKeyError) as info:
        signing.signing_key()
    assert info.value.code == "key_error" and info.value.field == signing.SIGNING_KEY_ENV
    assert "64 hex digits" in str(info.value)
    if value:
        assert value not in str(info.value)


def test_a_group_readable_key_file_is_a_key_error(config):
    key = signing.signing_key()
    signing.key_path().chmod(0o640)
    with pytest.raises(SecretKeyError, match="chmod 600") as info:
        signing.signing_key()
    assert info.value.code == "key_error"
    _assert_key_not_shown(info.value, key)


def test_a_key_folder_others_can_write_is_a_key_error(config):
    key = signing.signing_key()
    signing.key_path().parent.chmod(0o770)
    with pytest.raises(SecretKeyError, match="chmod 700") as info:
        signing.signing_key()
    _assert_key_not_shown(info.value, key)


@pytest.mark.parametrize("size", [0, 16, 33])
def test_a_key_file_of_the_wrong_length_is_a_key_error(config, size):
    path = signing.key_path()
    path.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * size)
    os.close(fd)
    with pytest.raises(SecretKeyError, match="damaged.*delete it") as info:
        signing.signing_key()
    if size:
        _assert_key_not_shown(info.value, b"k" * size)


def test_key_ids_are_public_fingerprints_not_the_key():
    kid = signing.key_id(KEY_A)
    assert len(kid) == 16 and kid != KEY_A.hex()[:16]
    assert kid not in hashlib.sha256(KEY_A).hexdigest()
    assert signing.key_id(KEY_A) == kid != signing.key_id(KEY_B)


def test_signatures_depend_on_key_and_bytes():
    sig = signing.sign(b"payload", KEY_A)
    assert signing.verify(b"payload", sig, KEY_A)
    assert not signing.verify(b"payload!", sig, KEY_A)
    assert not signing.verify(b"payload", sig, KEY_B)
    assert not signing.verify(b"payload", "é" * 64, KEY_A)
    with pytest.raises(InvalidParameterError):
        signing.sign(b"payload", b"short")
