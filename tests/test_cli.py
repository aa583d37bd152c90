"""Behaviour every `koala` command shares: a quiet start-up and a one-line Ctrl-C."""
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

NOISE = ("absl", "oneDNN", "cuda", "CUDA", "I0000", "E0000", "WARNING")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")  # koala serve's log: a timestamp first


def start_as_from_a_terminal(command: list[str], **kwargs) -> subprocess.Popen:
    """Popen ``command`` with SIGINT at its default, as a terminal starts it. A suite started in the
    background by a non-interactive shell (``make test &``, ``nohup``) ignores SIGINT, and an ignored
    signal stays ignored across exec: the server would rightly never see the Ctrl-C. A handled
    signal is reset to its default by exec, so handle it in this process while the child starts."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_start_up_is_quiet_and_ctrl_c_is_one_line(constant_ab_run):
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}  # a SIGABRT dumps every thread's stack
    server = start_as_from_a_terminal([sys.executable, "-m", "koala.cli", "serve", "--model", constant_ab_run, "--port",
                                       "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert "serving" in line, line
        # Ctrl-C once the page answers, as a user presses it on a running server.
        url = re.search(r"http://\S+/", line).group(0)
        assert urllib.request.urlopen(url, timeout=60).status == 200
        server.send_signal(signal.SIGINT)
        try:
            out, err = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGABRT)
            out, err = server.communicate(timeout=60)
            pytest.fail(f"koala serve did not stop within 60 s of SIGINT; its stacks:\n{err}")
    finally:
        server.kill()
    assert server.returncode == 130
    logged = [line for line in err.strip().splitlines() if LOG_LINE.match(line)]
    assert any(" GET / 200 " in line for line in logged), err  # the access log
    # Timestamped server events may come too (under load the request can beat waitress's threads:
    # "Task queue depth is 1"); nothing else may.
    assert [line for line in err.strip().splitlines() if line not in logged] == ["koala serve: interrupted"], err


def test_server_events_are_timestamped_log_lines(capsys):
    import logging

    from koala.cli import _log_server_events

    loggers = [logging.getLogger(name) for name in ("koala.access", "waitress")]
    before = [(log.level, log.propagate) for log in loggers]
    _log_server_events()
    try:
        logging.getLogger("koala.access").info("127.0.0.1 GET / 200 1980 6")
        logging.getLogger("waitress.queue").warning("Task queue depth is %d", 2)
        logging.getLogger("waitress").info("not shown: waitress's notices start at warnings")
    finally:
        for log, (level, propagate) in zip(loggers, before):
            log.handlers.clear()
            log.setLevel(level)
            log.propagate = propagate
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(LOG_LINE.match(line) for line in lines), lines
    assert lines[0].endswith(" 127.0.0.1 GET / 200 1980 6") and lines[1].endswith(" Task queue depth is 2")


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


def test_version_is_the_packages():
    import importlib.metadata

    from packaging.version import Version

    import koala

    result = subprocess.run([sys.executable, "-m", "koala.cli", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"koala {koala.__version__}"
    # The installed distribution (setup.cfg reads koala.__version__) carries the same PEP 440 version.
    assert importlib.metadata.version("koala") == koala.__version__ == str(Version(koala.__version__))


def _help(capsys, *command: str) -> str:
    import pytest

    from koala.cli import main

    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_command_has_a_one_line_description(capsys):
    """Listed with its summary in its parent's --help, and that summary opens its own --help."""
    from koala.cli import build_parser

    def commands(parser, prefix=()):
        for action in parser._subparsers._group_actions if parser._subparsers else []:
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from commands(sub, (*prefix, name))

    found = dict(commands(build_parser()))
    assert {"models", "train", "colorize", "export", "serve", "evaluate", "compare", "batch",
            "batch colorize", "batch embed"} <= {" ".join(c) for c in found}
    for command, sub in found.items():
        listing = _help(capsys, *command[:-1])
        line = [l.split(None, 1) for l in listing.splitlines() if l.strip().startswith(command[-1] + " ")]
        assert line and len(line[0]) == 2, (command, listing)  # its name, then its summary
        own = " ".join(_help(capsys, *command).split())
        assert sub.description and " ".join(sub.description.split()) in own, (command, own)


def test_preset_help_lists_every_preset_of_the_registries(capsys):
    from koala import config
    from koala.evaluation.compare import config as compare_config

    train_help = " ".join(_help(capsys, "train").split())
    assert all(f"{name}," in train_help or f"{name} " in train_help for name in config.presets())
    assert "zhang16_small" in train_help and "resunet34_gan" in train_help
    compare_help = " ".join(_help(capsys, "compare").split())
    assert all(name in compare_help for name in compare_config.PRESETS)


def test_importing_the_python_api_is_quiet():
    result = subprocess.run([sys.executable, "-c", "from koala import Colorizer; print(Colorizer.__name__)"],
                            capture_output=True, text=True, timeout=600,
                            env={k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 0 and result.stdout.strip() == "Colorizer"
    assert result.stderr == "", result.stderr


def test_the_parser_offers_exports_formats_without_loading_tensorflow():
    """`koala export --format` takes its choices from the one list koala.export checks, and building
    the parser (so `koala --help` and bad arguments) imports neither TensorFlow nor Beam."""
    code = ("import sys; from koala.cli import build_parser; from koala.serving import EXPORT_FORMATS; "
            "sub = build_parser()._subparsers._group_actions[0].choices['export']; "
            "fmt = next(a for a in sub._actions if a.dest == 'format'); "
            "print(tuple(fmt.choices) == EXPORT_FORMATS, sorted(m for m in ('tensorflow', 'apache_beam') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True []", out.stderr
