"""The repository's set-up files keep their promises: pyproject.toml and environment.yml list the
same dependencies, the README's two commands are the ones course.py and CI run, and `course.py lab`
really serves JupyterLab on the course."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells some packages differently from PyPI
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment_yml() -> tuple[set[str], set[str]]:
    conda, pip, in_pip = set(), set(), False
    text = (ROOT / "environment.yml").read_text().split("\ndependencies:", 1)[1]
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        item = re.match(r"^(\s*)- (.+)$", stripped)
        if stripped.strip() == "- pip:":
            in_pip = True
            continue
        if item:
            if in_pip and len(item.group(1)) < 6:
                in_pip = False
            (pip if in_pip else conda).add(item.group(2).strip())
    return conda, pip


def test_pyproject_and_environment_list_the_same_dependencies():
    project = _pyproject()["project"]
    wanted = {CONDA_NAMES.get(_name(r), _name(r)): r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    conda, pip = _environment_yml()
    listed = {_name(r): r for r in conda | pip}
    listed.pop("python", None)
    listed.pop("pip", None)
    assert set(listed) == set(wanted), f"only in pyproject: {set(wanted) - set(listed)}, only in environment.yml: {set(listed) - set(wanted)}"
    for name, req in wanted.items():
        spec_py = re.sub(r"^[A-Za-z0-9_.\-]+", "", req).replace(" ", "")
        spec_env = re.sub(r"^[A-Za-z0-9_.\-]+", "", listed[name]).replace(" ", "")
        assert spec_py == spec_env, f"{name}: pyproject says {spec_py!r}, environment.yml says {spec_env!r}"


def test_runtime_dependencies_are_the_course_stack():
    names = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    assert names == {"torch", "numpy", "matplotlib", "scikit-learn", "tqdm", "nbgrader", "jupyterlab"}
    assert _pyproject()["project"]["requires-python"] == ">=3.10"


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```(?:bash|sh)?\n(.*?)\n```", quick, flags=re.S | re.M)
    lines = [c.strip() for block in commands for c in block.splitlines() if c.strip() and not c.strip().startswith("#")]
    assert lines == ["python3 course.py lab", "python3 course.py test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert [l for l in ci.splitlines() if l and not l.startswith("#") and not l.startswith("set ") and not l.startswith("cd ")] == ["exec python3 course.py test"]
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_torch_is_pinned_only_when_missing():
    source = (ROOT / "course.py").read_text()
    assert 'TORCH_PIN = "torch==2.13.0"' in source
    torch_req = next(r for r in _pyproject()["project"]["dependencies"] if _name(r) == "torch")
    assert "<" not in torch_req and "==" not in torch_req, "the range must admit a user's own torch build"


def test_gitignore_keeps_grading_work_and_environments_out():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("submitted/", "autograded/", "feedback/", "gradebook.db", ".venv/"):
        assert entry in ignored


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_course_lab_serves_jupyterlab_on_the_notebooks():
    port = _free_port()
    env = dict(os.environ, EDGEAI_VENV=str(Path(sys.executable).parent.parent))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "course.py"), "lab", "--no-browser", f"--port={port}",
         "--ServerApp.token=", "--ServerApp.password=", "--ip=127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/notebooks/01_efficiency", timeout=5) as r:
                    listing = r.read().decode()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5) as r:
                    page = r.read().decode()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    out = proc.stdout.read() if proc.poll() is not None else ""
                    pytest.fail(f"JupyterLab did not come up on port {port}: {out[-2000:]}")
                time.sleep(1)
        assert "01_efficiency.ipynb" in listing
        assert "JupyterLab" in page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
