"""Package habits: one version source, the package logger, the licence and type information."""

import logging
import os
import re
import sys
from importlib.metadata import version
from pathlib import Path

import edge_speech
from edge_speech import cli

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_has_one_source():
    assert version("edge-speech") == edge_speech.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"^version\s*=", pyproject, re.M) is None and 'dynamic = ["version"]' in pyproject
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "edge_speech/__init__.py" in cmake and not re.search(r"project\([^)]*VERSION \d", cmake)


def test_the_library_logger_is_silent_until_configured():
    handlers = logging.getLogger("edge_speech").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_cli_verbosity_sets_the_package_logger(capsys):
    logger = logging.getLogger("edge_speech")
    saved = logger.level, list(logger.handlers), logger.propagate
    try:
        for flags, level in (
            ([], logging.WARNING),
            (["-v"], logging.INFO),
            (["-vv"], logging.DEBUG),
            (["-q"], logging.ERROR),
        ):
            assert cli.main([*flags, "targets"]) == 0
            assert logger.level == level
        capsys.readouterr()
        cli.main(["-v", "targets"])
        logging.getLogger("edge_speech.backends").info("a message from inside the library")
        assert "edge-speech: INFO: a message from inside the library" in capsys.readouterr().err
        with open(os.devnull, "w") as elsewhere:  # the handler follows sys.stderr as it changes
            sys.stderr, saved_stderr = elsewhere, sys.stderr
            logging.getLogger("edge_speech.backends").info("to devnull")
            sys.stderr = saved_stderr
        logging.getLogger("edge_speech.backends").info("back again")
        assert capsys.readouterr().err == "edge-speech: INFO: back again\n"
        cli.main(["-q", "targets"])
        logging.getLogger("edge_speech.backends").warning("hidden by -q")
        assert "hidden by -q" not in capsys.readouterr().err
        assert sum(isinstance(h, cli._CurrentStderrHandler) for h in logger.handlers) == 1
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1]
        logger.propagate = saved[2]


def test_licence_and_type_marker_ship():
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "edge_speech" / "py.typed").exists()


def test_the_native_stub_names_exactly_what_the_extension_has():
    import ast

    from edge_speech import _native

    stub = ast.parse((ROOT / "edge_speech" / "_native.pyi").read_text())
    declared = {}
    for node in stub.body:
        if isinstance(node, ast.FunctionDef):
            declared[node.name] = None
        elif isinstance(node, ast.ClassDef):
            declared[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
    actual = {}
    for name in dir(_native):
        if name.startswith("_"):
            continue
        obj = getattr(_native, name)
        actual[name] = {m for m in vars(obj) if not m.startswith("_")} if isinstance(obj, type) else None
    assert declared == actual
