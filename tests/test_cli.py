"""Behaviour every `koala` command shares: a quiet start-up and a one-line Ctrl-C."""
import signal
import subprocess
import sys

NOISE = ("absl", "oneDNN", "cuda", "CUDA", "I0000", "E0000", "WARNING")


def test_start_up_is_quiet_and_ctrl_c_is_one_line(constant_ab_run):
    server = subprocess.Popen([sys.executable, "-m", "koala.cli", "serve", "--model", constant_ab_run, "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in server.stdout.readline()
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 130
    assert err.strip().splitlines() == ["koala serve: interrupted"], err


def test_verbose_shows_tensorflow_start_up(tmp_path):
    result = subprocess.run([sys.executable, "-m", "koala.cli", "--verbose", "colorize", str(tmp_path / "none.png"),
                             "-o", str(tmp_path / "out"), "--model", str(tmp_path / "no-model")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and any(word in result.stderr for word in NOISE)
    quiet = subprocess.run([sys.executable, "-m", "koala.cli", "colorize", str(tmp_path / "none.png"),
                            "-o", str(tmp_path / "out"), "--model", str(tmp_path / "no-model")],
                           capture_output=True, text=True, timeout=120)
    lines = quiet.stderr.strip().splitlines()
    assert quiet.returncode == 2 and len(lines) == 2 and not any(word in quiet.stderr for word in NOISE), lines
