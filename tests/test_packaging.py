"""The set-up files agree with each other: pyproject.toml, environment.yml, constraints.txt, Makefile."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """'torch>=2.2' -> 'torch' (normalised as pip does)."""
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_pip_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = [line.strip()[2:] for line in lines[start + 1:] if line.strip().startswith("- ")]
    return {_name(r): r.replace(" ", "") for r in reqs if not r.startswith("-")}


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version
    return pins


def test_environment_yml_lists_the_same_requirements_as_pyproject():
    assert _environment_pip_requirements() == _pyproject_requirements()


def test_environment_yml_installs_through_the_constraints_file():
    text = (ROOT / "environment.yml").read_text()
    assert "-c constraints.txt" in text


def test_every_requirement_is_pinned_in_constraints():
    pins = _constraints()
    missing = sorted(set(_pyproject_requirements()) - set(pins))
    assert not missing, f"add these to constraints.txt (make constraints): {missing}"


def test_constraints_pin_the_tested_versions():
    pins = _constraints()
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"
    assert pins["nbgrader"].startswith("0.9.")
    assert pins["nbval"].startswith("0.11.")
    assert pins["jupyterlab"].startswith("4.")
    assert pins["ipywidgets"].startswith("8.")
    assert pins["jupyter-book"].startswith("1.")


def test_makefile_installs_with_the_constraints_and_a_stamp():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile
    assert re.search(r"^\$\(STAMP\): pyproject.toml constraints.txt", makefile, re.M)
    for target in ("lab", "test", "train"):
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.M), f"make {target} must install first"


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_embedded_data_is_packaged():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "embedded/*" in pyproject["tool"]["setuptools"]["package-data"]["imgrec_lib"]


def test_binder_installs_the_course_after_the_repository_is_copied():
    """repo2docker builds .binder/environment.yml before the repository is there: no `-e .` or
    `-c constraints.txt` in it; .binder/postBuild installs the course, pinned, with the same Python."""
    binder_env = (ROOT / ".binder" / "environment.yml").read_text()
    dependencies = binder_env.split("dependencies:")[1]
    assert "-e ." not in dependencies and "constraints" not in dependencies
    python = re.compile(r"^\s*- python=(\S+)$", re.M)
    assert python.search(binder_env).group(1) == python.search((ROOT / "environment.yml").read_text()).group(1)
    post_build = ROOT / ".binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert 'pip install --no-cache-dir -c constraints.txt -e ".[lab]"' in post_build.read_text()


def test_the_learners_library_holds_no_course_tooling():
    """Grading and the headless-Jupyter workaround live in grading/, not in the package learners import."""
    modules = {p.stem for p in (ROOT / "imgrec_lib").glob("*.py")}
    assert not modules & {"grading", "jupyter_fix", "recorder", "sandbox"}, modules
    for path in (ROOT / "imgrec_lib").glob("*.py"):
        assert "nbgrader" not in path.read_text() and "jupyter_client" not in path.read_text(), path.name
