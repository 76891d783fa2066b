#!/usr/bin/env python3
"""Set up the course environment and run it: the README's two commands.

    python3 course.py lab     install everything, then open JupyterLab on the notebooks
    python3 course.py test    install everything the same way, then run the whole test suite

Needs only Python >= 3.10. Everything is installed into the environment you have activated (a
virtualenv or conda environment) if there is one, else into a fresh `.venv/` beside this file
(`EDGEAI_VENV=path` picks another folder). PyTorch is installed only when it is not importable, so
a build you installed yourself (e.g. with CUDA, in your activated environment) is kept; otherwise
the pinned, known-good release below is taken. Installation is skipped on later runs until
pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TORCH_PIN = "torch==2.13.0"  # known good; an unpinned `torch` would pull a multi-GB CUDA build
USAGE = "usage: python3 course.py {lab,test} [extra arguments for jupyter lab / pytest]"


def environment_python() -> Path:
    """The interpreter to install into: the active environment, else `.venv/`."""
    if os.environ.get("EDGEAI_VENV"):
        venv_dir = Path(os.environ["EDGEAI_VENV"]).resolve()
    elif sys.prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX") == sys.prefix:
        return Path(sys.executable)  # an activated virtualenv / conda environment
    else:
        venv_dir = ROOT / ".venv"
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = venv_dir / bindir / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"[course] creating virtual environment {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    return python


def run(*cmd: str | Path) -> None:
    print("[course] " + " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def install(python: Path) -> None:
    """Install PyTorch (only if missing) and the course package with its test tools."""
    stamp = python.parent.parent / ".edgeai-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    has_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0
    if has_torch:
        print("[course] PyTorch is importable: keeping it", flush=True)
    else:
        run(*pip, TORCH_PIN)
    run(*pip, "-e", f"{ROOT}[dev]")
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):
        print(f"Python >= 3.10 is needed, this is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ("lab", "test"):
        print(USAGE, file=sys.stderr)
        return 2
    command, extra = argv[0], argv[1:]
    python = environment_python()
    try:
        install(python)
    except subprocess.CalledProcessError as err:
        print(f"[course] installation failed ({err}); see the pip output above", file=sys.stderr)
        return 1
    if command == "lab":
        args = [str(python), "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}",
                "--LabApp.default_url=/lab/tree/notebooks", *extra]
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
            args.append("--allow-root")  # containers often run as root; JupyterLab refuses otherwise
    else:
        # both cores; the course tests are grouped per notebook so each is graded once
        args = [str(python), "-m", "pytest", "-n", "auto", "--dist", "loadgroup", *extra]
    print("[course] " + " ".join(args), flush=True)
    os.chdir(ROOT)
    if os.name == "posix":
        os.execv(args[0], args)  # become JupyterLab / pytest: signals (Ctrl-C, kill) reach it directly
    return subprocess.run(args).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
