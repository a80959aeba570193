"""JudgeSpec.fingerprint: a local model's weights are part of it (a judge trained again into the same folder is
another judge), named and remote models keep the fingerprint they had."""

import os

from judgerl.judges import spec as spec_mod
from judgerl.judges.spec import JudgeSpec, weights_identity


def test_retrained_weights_in_the_same_folder_change_the_fingerprint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"first weights")
    first = JudgeSpec(model=str(tmp_path)).fingerprint()
    w.write_bytes(b"other weights")  # trained again, same path
    second = JudgeSpec(model=str(tmp_path)).fingerprint()
    assert first != second
    st = w.stat()
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes: read again, same identity
    assert JudgeSpec(model=str(tmp_path)).fingerprint() == second
    (tmp_path / "notes.txt").write_text("not weights")
    assert JudgeSpec(model=str(tmp_path)).fingerprint() == second


def test_named_and_remote_models_carry_no_weight_identity(tmp_path):
    assert weights_identity("smollm2-135m-instruct") is None
    assert weights_identity(str(tmp_path)) is None  # a folder without weight files
    (tmp_path / "model.safetensors").write_bytes(b"x")
    remote = JudgeSpec(backend="openai", model=str(tmp_path))
    before = remote.fingerprint()
    (tmp_path / "model.safetensors").write_bytes(b"y")
    assert remote.fingerprint() == before  # a server's model is its name, not files here


def test_each_weight_file_is_read_once_a_process(tmp_path, monkeypatch):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    reads = []
    import judgerl.models as models

    real = models.sha256_file
    monkeypatch.setattr(models, "sha256_file", lambda p: reads.append(p) or real(p))  # spec imports it per call
    monkeypatch.setattr(spec_mod, "_WEIGHT_DIGESTS", {})
    a = weights_identity(str(tmp_path))
    b = weights_identity(str(tmp_path))
    assert a == b and len(reads) == 1


def test_large_weight_files_are_sampled_and_still_tell_retrained_weights_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(spec_mod, "SAMPLED_ABOVE", 4 << 20)
    monkeypatch.setattr(spec_mod, "_WEIGHT_DIGESTS", {})
    w = tmp_path / "model.safetensors"
    w.write_bytes(os.urandom(6 << 20))
    a = weights_identity(str(tmp_path))
    data = bytearray(w.read_bytes())
    data[3 << 20] ^= 0xFF  # one byte inside the sampled blocks 15 and 16 (they start at 15/31 and 16/31 of 5 MiB)
    w.write_bytes(bytes(data))
    assert weights_identity(str(tmp_path)) != a
