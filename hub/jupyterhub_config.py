"""JupyterHub for the imgrec course on one machine: `sudo make hub` (docs/INSTRUCTOR_GUIDE.md).

Who is who comes from the roster (hub/roster.txt, see roster.example.txt): each line names a Unix
account and its role. The hub runs as root so that it can start each person's JupyterLab as their
own Unix account (LocalProcessSpawner) and check their password (PAM):

- **students** (group `nbgrader-imgrec`) get JupyterLab in their home folder with the course's
  kernel (this .venv) and nbgrader's *Assignments* panel: fetch, submit, fetch feedback.
- **instructors** (group `formgrade-imgrec`) also reach the course service `/services/imgrec/`:
  one JupyterLab on the course folder (this repository), run as the folder's owner, with formgrader
  at `/services/imgrec/formgrader` and a terminal for `make autograde`. Open formgrader there, in its
  own tab: JupyterHub 4.1+ forbids showing it in a frame of another server.
- the **exchange** is a folder everyone can write in (mode 1777, hub/prepare.py makes it); nbgrader
  gives each course's inbox its own permissions (students can put submissions in, not read them).

The group names are nbgrader's convention (its JupyterHubAuthPlugin lists a student's courses from
them). Every setting below can be changed with an environment variable, named beside it.
"""

import os
import pwd
import signal
import sys
from pathlib import Path

HUB = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent  # the course's .venv: `make hub` runs jupyterhub from it
COURSE_ID = "imgrec"

COURSE = Path(os.environ.get("IMGREC_HUB_COURSE", HUB.parent)).resolve()  # the nbgrader course folder
EXCHANGE = os.environ.get("IMGREC_HUB_EXCHANGE", "/srv/nbgrader/exchange")
ROSTER = Path(os.environ.get("IMGREC_HUB_ROSTER", HUB / "roster.txt"))
STATE = Path(os.environ.get("IMGREC_HUB_STATE", HUB / "state"))  # the hub's database and secrets
IP = os.environ.get("IMGREC_HUB_IP", "127.0.0.1")  # 0.0.0.0 for a lab room (with a certificate)
PORT = int(os.environ.get("IMGREC_HUB_PORT", "8000"))  # the address people open
HUB_API_PORT = int(os.environ.get("IMGREC_HUB_API_PORT", "8081"))  # internal: hub API
PROXY_API_PORT = int(os.environ.get("IMGREC_HUB_PROXY_API_PORT", "8001"))  # internal: proxy API
SERVICE_PORT = int(os.environ.get("IMGREC_HUB_SERVICE_PORT", "9999"))  # internal: the course service
SSL_CERT = os.environ.get("IMGREC_HUB_SSL_CERT", "")  # PEM files; without them, plain HTTP
SSL_KEY = os.environ.get("IMGREC_HUB_SSL_KEY", "")


def read_roster(path: Path) -> dict[str, list[str]]:
    """{'instructor': [...], 'student': [...]} from lines `ROLE USERNAME` (# starts a comment)."""
    roles: dict[str, list[str]] = {"instructor": [], "student": []}
    if not path.exists():
        sys.exit(f"no roster at {path}: copy hub/roster.example.txt to hub/roster.txt and edit it")
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or words[0] not in roles:
            sys.exit(f"{path}, line {number}: expected 'instructor NAME' or 'student NAME', got {line!r}")
        roles[words[0]].append(words[1])
    return roles


ROSTER_ROLES = read_roster(ROSTER)
INSTRUCTORS, STUDENTS = ROSTER_ROLES["instructor"], ROSTER_ROLES["student"]
INSTRUCTOR_GROUP, STUDENT_GROUP = f"formgrade-{COURSE_ID}", f"nbgrader-{COURSE_ID}"

# What every single-user server and the course service find: the course's programs first (nbgrader
# runs `alembic`), and the settings in hub/jupyter/ (nbgrader's exchange and course id, terminals).
USER_ENV = {
    "PATH": f"{VENV_BIN}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
    "IMGREC_COURSE_BIN": str(VENV_BIN),  # terminals put it first again (hub/jupyter/bashrc)
    "JUPYTER_CONFIG_PATH": str(HUB / "jupyter"),
    "IMGREC_EXCHANGE": EXCHANGE,
}

c = get_config()  # noqa: F821  (JupyterHub provides get_config)

# A hub started in the background (`nohup sudo make hub &`, a script) ignores SIGINT until it sets
# its own handler, which it does only after starting the course service: the service inherited the
# ignore, missed the hub's SIGINT at shutdown and stopped on SIGTERM 30 s later. Default it is.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# ---- the hub, its proxy and its state ---------------------------------------------------------
c.JupyterHub.bind_url = f"{'https' if SSL_CERT else 'http'}://{IP}:{PORT}"
if SSL_CERT:
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = SSL_CERT, SSL_KEY
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{HUB_API_PORT}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
# configurable-http-proxy from npm, installed by `make hub` into hub/node_modules
c.ConfigurableHTTPProxy.command = [str(HUB / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")

# ---- who may log in ---------------------------------------------------------------------------
# PAM: the machine's own accounts and passwords (`useradd -m NAME`, `passwd NAME`). Alternatives:
# jupyterhub-nativeauthenticator (people sign up, an admin approves), or your institution's OAuth.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set(INSTRUCTORS) | set(STUDENTS)

# ---- each person's JupyterLab, as their own Unix account --------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV_BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.environment = dict(USER_ENV)
c.Spawner.http_timeout = c.Spawner.start_timeout = 180  # a room that logs in at once, on few cores

# ---- roles and groups: nbgrader's course groups, and who reaches the course service -----------
c.JupyterHub.load_groups = {
    INSTRUCTOR_GROUP: {"users": INSTRUCTORS},
    STUDENT_GROUP: {"users": STUDENTS},
}
c.JupyterHub.load_roles = [
    {
        "name": "instructor",
        "description": f"opens the {COURSE_ID} course service (formgrader, the course folder)",
        "groups": [INSTRUCTOR_GROUP],
        "scopes": [f"access:services!service={COURSE_ID}", "list:services", f"read:services!service={COURSE_ID}"],
    },
    {
        # a server's token may also read its owner's groups: nbgrader's Assignments panel asks
        # the hub which courses (nbgrader-<course>, formgrade-<course>) its user belongs to
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", "read:users:groups!user", "read:users:name!user"],
    },
]

# ---- the course service: formgrader and the course folder, for instructors ---------------------
owner = pwd.getpwuid(COURSE.stat().st_uid).pw_name  # grading runs as the course folder's owner
c.JupyterHub.services = [
    {
        "name": COURSE_ID,
        "url": f"http://127.0.0.1:{SERVICE_PORT}",
        "command": [str(VENV_BIN / "jupyterhub-singleuser"), f"--ServerApp.root_dir={COURSE}",
                    *(["--allow-root"] if owner == "root" else [])],
        "cwd": str(COURSE),  # nbgrader reads the course's nbgrader_config.py from here
        "environment": {**USER_ENV, "JUPYTERHUB_DEFAULT_URL": "/lab"},
        "oauth_no_confirm": True,
        **({"user": owner} if owner != pwd.getpwuid(os.getuid()).pw_name else {}),
    },
]
