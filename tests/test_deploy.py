"""The deployment kit (deploy/) and the hub's configuration, checked as far as they can be without
Docker or Kubernetes (deploy/README.md says what was and was not run):

- every YAML file parses, and the Kubernetes objects are the kinds the README names;
- hub/jupyterhub_config.py and the Zero to JupyterHub values' hub settings load in JupyterHub's own
  config loader, and JupyterHub accepts the roles, groups and services they define;
- both agree on the course: the service name, the groups nbgrader reads, the instructor role's
  scopes, the exchange folder the single-user image's nbgrader settings name;
- the grading Job's two containers can talk (one group, a group-writable socket), one failed pod
  fails only its submission, every volume and secret a pod names is defined in the kit, and every
  image is one the README says to replace;
- the image definition installs what constraints.txt pins: the same Python, the same torch and
  torchvision (CPU builds by default, the PyPI CUDA builds for the GPU variant), every pip install
  through the constraints, and no solutions in the students' image;
(hub/prepare.py, which `make hub` runs first, has its own tests: tests/test_hub_prepare.py.)
"""

from __future__ import annotations

import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from jupyterhub.app import JupyterHub
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COURSE_ID = "imgrec"
EXCHANGE = "/srv/nbgrader/exchange"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d is not None]


def values() -> dict:
    (found,) = documents("z2jh-values.yaml")
    return found


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return dict(line.lower().split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_every_yaml_file_of_the_kit_parses_into_the_kinds_it_should():
    kinds = {name: [d["kind"] for d in documents(name)] for name in ("course-service.yaml", "grading-job.yaml")}
    assert kinds == {"course-service.yaml": ["PersistentVolumeClaim", "PersistentVolumeClaim", "PersistentVolumeClaim",
                                             "Secret", "Deployment", "Service"],
                     "grading-job.yaml": ["Job", "NetworkPolicy"]}
    assert set(values()) >= {"hub", "singleuser", "cull", "scheduling"}


@pytest.fixture
def hub_config(tmp_path, monkeypatch):
    """hub/jupyterhub_config.py as `make hub` reads it, with a roster of three."""
    roster = tmp_path / "roster.txt"
    roster.write_text("instructor ana\nstudent bo\nstudent cy  # a comment\n")
    monkeypatch.setenv("IMGREC_HUB_ROSTER", str(roster))
    app = JupyterHub()
    app.load_config_file(str(ROOT / "hub" / "jupyterhub_config.py"))
    return app


def test_the_hub_config_loads_in_jupyterhubs_loader(hub_config):
    app = hub_config
    assert app.authenticator_class.__name__ == "PAMAuthenticator"
    assert app.spawner_class.__name__ == "LocalProcessSpawner"
    assert app.load_groups == {f"formgrade-{COURSE_ID}": {"users": ["ana"]},
                               f"nbgrader-{COURSE_ID}": {"users": ["bo", "cy"]}}
    (service,) = app.services
    assert service["name"] == COURSE_ID and service["url"].startswith("http://127.0.0.1:")
    roles = {role["name"]: role for role in app.load_roles}
    assert roles["instructor"]["groups"] == [f"formgrade-{COURSE_ID}"]
    assert f"access:services!service={COURSE_ID}" in roles["instructor"]["scopes"]
    assert "read:users:groups!user" in roles["server"]["scopes"]
    assert Path(app.config.ConfigurableHTTPProxy.command[0]).name == "configurable-http-proxy"


def test_a_roster_line_that_is_not_a_role_and_a_name_stops_the_hub(tmp_path, monkeypatch):
    roster = tmp_path / "roster.txt"
    roster.write_text("instructor ana\nteacher bo\n")
    monkeypatch.setenv("IMGREC_HUB_ROSTER", str(roster))
    with pytest.raises(SystemExit, match="line 2: expected 'instructor NAME' or 'student NAME'"):
        JupyterHub().load_config_file(str(ROOT / "hub" / "jupyterhub_config.py"))


def test_the_kubernetes_hub_settings_load_in_jupyterhub_and_match_make_hub(hub_config):
    hub = values()["hub"]
    config = Config(hub["config"])
    # z2jh's hub image has the OAuth authenticators (oauthenticator); this machine does not
    assert config.JupyterHub.pop("authenticator_class") == "generic-oauth"
    app = JupyterHub(config=config)
    assert app.config.Authenticator.allow_existing_users and not app.config.Authenticator.allow_all
    assert set(app.load_groups) == {f"formgrade-{COURSE_ID}", f"nbgrader-{COURSE_ID}"}
    # z2jh turns hub.loadRoles {name: role} into JupyterHub.load_roles and hub.services into services
    app.load_roles = [{"name": name, **role} for name, role in hub["loadRoles"].items()]
    app.services = [{"name": name, **{k: v for k, v in s.items() if k != "apiToken"}, "api_token": s["apiToken"]}
                    for name, s in hub["services"].items()]
    same = {role["name"]: role for role in hub_config.load_roles}
    for role in app.load_roles:
        assert role["scopes"] == same[role["name"]]["scopes"], role["name"]
        assert role.get("groups") == same[role["name"]].get("groups"), role["name"]
    assert [s["name"] for s in app.services] == [COURSE_ID]


def test_the_kubernetes_pieces_fit_together():
    v = values()
    single = v["singleuser"]
    assert single["extraEnv"]["IMGREC_EXCHANGE"] == EXCHANGE
    assert single["storage"]["extraVolumeMounts"] == [{"name": "exchange", "mountPath": EXCHANGE}]
    cpu, gpu = single["profileList"]
    assert cpu["default"] and "kubespawner_override" not in cpu
    assert gpu["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert gpu["kubespawner_override"]["image"].endswith(":gpu") and single["image"]["tag"] == "cpu"
    assert v["cull"]["enabled"] and v["cull"]["timeout"] > 0
    assert v["scheduling"]["userPlaceholder"]["enabled"] and v["scheduling"]["userPlaceholder"]["replicas"] > 0

    claim, _, _, secret, deployment, service = documents("course-service.yaml")
    assert claim["metadata"]["name"] == "nbgrader-exchange" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JUPYTERHUB_SERVICE_NAME"] == COURSE_ID and env["JUPYTERHUB_SERVICE_PREFIX"] == f"/services/{COURSE_ID}/"
    assert {"name": "exchange", "mountPath": EXCHANGE} in container["volumeMounts"]
    assert v["hub"]["services"][COURSE_ID]["url"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert secret["stringData"]["token"] == v["hub"]["services"][COURSE_ID]["apiToken"]
    # the grader image for the service and the grading Job; the students' image has no solutions
    assert container["image"].split("/")[-1] == "imgrec-grader:cpu"
    job, _ = documents("grading-job.yaml")
    assert {c["image"].split("/")[-1] for c in job["spec"]["template"]["spec"]["containers"]} == {"imgrec-grader:cpu"}


def test_the_image_installs_what_constraints_pins():
    text = (DEPLOY / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)  # one line per instruction
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", logical, re.M)
    assert [name for _, name in stages] == ["base", "singleuser", "grader"]
    python = re.match(r"python:(\d+\.\d+)", stages[0][0])  # the Python constraints.txt was made with
    assert python and python.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}", stages[0][0]
    runs = [line for line in logical.splitlines() if line.startswith("RUN ")]
    installs = [part for line in runs for part in line.split("&&") if "pip install" in part and "--upgrade" not in part]
    assert installs and all("-c constraints.txt" in part for part in installs), installs
    pinned = pins()
    assert "torch" in pinned and "torchvision" in pinned and any(name.startswith("nvidia-") for name in pinned), \
        "constraints.txt should pin torch, torchvision and the CUDA libraries the GPU image takes"
    torch_line = next(part for part in installs if "torch torchvision" in part)
    assert "$index" in torch_line and "download.pytorch.org/whl/cpu" in logical  # CPU unless TORCH=cuda
    assert "ARG TORCH=cpu" in text
    extras = re.search(r'"\.\[([a-z,]+)\]"', logical).group(1).split(",")
    project = (ROOT / "pyproject.toml").read_text()
    assert all(re.search(rf"^{extra} = \[", project, re.M) for extra in extras), extras
    singleuser = logical.split("AS singleuser", 1)[1].split("FROM ", 1)[0]
    assert "solutions" not in singleuser and "grading" not in singleuser, "students must not get the solutions"
    grader = logical.split("AS grader", 1)[1]
    assert "chmod -R go-rwx /course/solutions" in grader, "the Job's kernel container (uid 65534) must not read them"
    for copied in re.findall(r"^COPY (?:--\S+ )?(.+) \S+$", logical, re.M):
        for path in copied.split():
            assert (ROOT / path).exists() or path.startswith("checkpoints/"), f"COPY {path}: not in the repository"


def pods() -> dict[str, dict]:
    """The pod templates of the kit's Deployment and Job, by name."""
    found = {}
    for name in ("course-service.yaml", "grading-job.yaml"):
        for d in documents(name):
            if d["kind"] in ("Deployment", "Job"):
                found[d["metadata"]["name"]] = d["spec"]["template"]["spec"]
    return found


def test_every_volume_and_secret_a_pod_names_is_defined_in_the_kit():
    defined = {(d["kind"], d["metadata"]["name"]) for name in ("course-service.yaml", "grading-job.yaml")
               for d in documents(name)}
    assert pods().keys() == {"imgrec-course", "imgrec-grade-01-convolution"}
    for name, pod in pods().items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod.get("initContainers", []) + pod["containers"]:
            for mount in container["volumeMounts"]:
                assert mount["name"] in volumes, f"{name}/{container['name']}: no volume {mount['name']}"
            for env in container.get("env", []):
                if "secretKeyRef" in env.get("valueFrom", {}):
                    assert ("Secret", env["valueFrom"]["secretKeyRef"]["name"]) in defined, env
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in defined, f"{name}: claim {claim} is not in the kit"


def test_every_image_the_kit_names_is_one_to_replace():
    text = "\n".join((DEPLOY / name).read_text() for name in ("course-service.yaml", "grading-job.yaml"))
    images = re.findall(r"image: (\S+)", text) + [values()["singleuser"]["image"]["name"]]
    assert images and all(image.startswith("REPLACE-") for image in images), images
    assert "replace every `REPLACE-...`" in (DEPLOY / "README.md").read_text()


def test_the_grading_job_fails_one_submission_at_a_time_and_its_containers_share_the_socket():
    job, _ = documents("grading-job.yaml")
    spec = job["spec"]
    assert 0 < spec["backoffLimitPerIndex"] <= 3 and "backoffLimit" not in spec  # not: one failure ends all
    pod = spec["template"]["spec"]
    kernel, grader = pod["containers"]
    group = pod["securityContext"]["fsGroup"]  # the emptyDir's group, and both containers'
    assert group not in (0, 1000, kernel["securityContext"]["runAsGroup"])  # not the image's or the kernel's own
    assert kernel["securityContext"]["runAsUser"] != 1000  # the grader runs as the image's user, 1000
    (socket_volume,) = [v for v in pod["volumes"] if v["name"] == "exchange"]
    assert "emptyDir" in socket_volume
    assert {m["name"] for m in kernel["volumeMounts"]} & {m["name"] for m in grader["volumeMounts"]} == {"exchange"}


def test_the_runner_makes_its_socket_writable_by_its_group(tmp_path):
    """What the Job's kernel container runs: the socket it listens on is srw-rw---- (the grader, in
    the same group, must write to it to connect), whatever the umask."""
    path = tmp_path / "runner.sock"
    runner = subprocess.Popen([sys.executable, "-c", "import os, sys; os.umask(0o022); "
                               "from grading.runner import main; sys.exit(main(['--listen', sys.argv[1]]))",
                               str(path)], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert runner.poll() is None and time.monotonic() < deadline, "the runner did not listen"
            time.sleep(0.1)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))  # after the mode is set: listen() comes after the chmod
            assert stat.S_IMODE(path.stat().st_mode) == 0o660
    finally:
        runner.kill()
        runner.wait()
