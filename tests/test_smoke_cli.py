import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "judgerl.cli", *args], capture_output=True, text=True)


def test_unknown_embedded_model_is_one_line_error():
    r = run("models", "fetch", "no-such-model")
    assert r.returncode == 2
    assert "unknown embedded model 'no-such-model'" in r.stderr
    assert "Traceback" not in r.stderr
