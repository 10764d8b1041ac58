"""Before `make hub` starts JupyterHub: the exchange folder, the hub's state folder, the course's
instructor-only files and the roster closed to other accounts, a check that every account in the
roster exists on this machine and can run the course's Python (the hub starts each one's server as
that Unix user), and warnings for home folders that classmates can read. Run as root, with the same
IMGREC_HUB_* variables as hub/jupyterhub_config.py.

    python hub/prepare.py
"""

import os
import pwd
import sys
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

HUB = Path(__file__).resolve().parent
LIBRARY = HUB.parent / "imgrec_lib"  # every person's server imports it from here (an editable install)

# The course folder is open to every account (their Python, .venv, and imgrec_lib live in it), so
# what only instructors may see is closed one by one: the names nbgrader_config.py gives (solutions
# are nbgrader's source folder), made if missing so that nbgrader later writes inside a closed
# folder; nbgrader's default names and git's history (it holds the solutions) where they exist; the
# files of scores and logs `make autograde` writes (made empty if missing: writing keeps the mode).
PRIVATE_FOLDERS = ("solutions", "submitted", "autograded", "feedback")
PRIVATE_IF_PRESENT = ("source", "release", ".git")
PRIVATE_FILES = ("gradebook.db", "grades.csv", "grading_report.json", ".nbgrader.log")


def load_hub_config():
    """hub/jupyterhub_config.py, read by the loader JupyterHub itself uses."""
    return PyFileConfigLoader("jupyterhub_config.py", path=str(HUB)).load_config()


def make_folders(exchange: Path, state: Path) -> None:
    """nbgrader's exchange: a folder every account may write in but not delete others' files from
    (mode 1777, like /tmp); nbgrader makes each course's outbound, inbound and feedback folders in
    it, with their own permissions, when the instructor first releases. The hub's state (its
    database, cookie secret, proxy pid): for root only."""
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o1777)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)


def close_private(course: Path) -> list[Path]:
    """Make the instructors' files in `course` the owner's only (folders 0700, files 0600; an empty
    gradebook file is one SQLite fills in), and return those other accounts can still read:
    none unless the file system ignores permissions. The course service runs as the course folder's
    owner, so instructors keep their access; what this makes is given to that owner."""
    owner = course.stat()
    private = [course / name for name in PRIVATE_FOLDERS]
    private += [course / name for name in PRIVATE_IF_PRESENT if (course / name).exists()]
    files = [course / name for name in PRIVATE_FILES]
    for path in [*private, *files]:
        if not path.exists():
            if path in private:
                path.mkdir()
            else:
                path.touch()
            os.chown(path, owner.st_uid, owner.st_gid)
        try:
            path.chmod(0o700 if path.is_dir() else 0o600)
        except OSError:
            pass  # reported below
    return [path for path in [*private, *files] if path.stat().st_mode & 0o077]


def missing_accounts(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(name)
    return missing


def open_homes(homes: dict[str, Path], groups: dict[str, set[int]]) -> list[str]:
    """The names in `homes` (name: home folder) whose home another of them may enter or read: open
    to every account (o+r or o+x: 0711 is enough to open a notebook whose name one knows, and the
    lessons' names are known), or to a group another name in `groups` (name: its group ids) is in.
    Each person's server keeps their notebooks and fetched feedback there."""
    found = []
    for name, home in homes.items():
        try:
            info = home.stat()
        except OSError:
            continue  # no home folder: JupyterHub says so when their server starts
        shared = any(info.st_gid in groups.get(other, set()) for other in homes if other != name)
        if info.st_mode & 0o005 or (info.st_mode & 0o050 and shared):
            found.append(name)
    return found


def unreachable(path: Path, need: int = 0o005) -> Path | None:
    """The first folder on the way to `path` that other accounts may not enter, or `path` itself if
    they lack `need` on it (0o004 read, 0o001 run or enter), or None. Both ways are checked: the path
    as written (the course's .venv/bin/python lies in the course folder, e.g. in a home of mode 0750)
    and the one its links lead to (e.g. a Python installed under /root by pyenv)."""
    path = Path(os.path.abspath(path))
    for way in (path, path.resolve()):
        for folder in reversed(way.parents):  # from / down
            if not folder.stat().st_mode & 0o001:
                return folder
    return None if path.stat().st_mode & need == need else path


def someone_elses(folder: Path, owner: int) -> bool:
    """Whether anything in `folder` (at any depth: pip or npm run by root leave root's files deep
    inside) belongs to another account than `owner`. About a second for the course's .venv."""
    if folder.lstat().st_uid != owner:
        return True
    for top, folders, files in os.walk(folder):
        for name in folders + files:
            if os.lstat(os.path.join(top, name)).st_uid != owner:
                return True
    return False


def main() -> int:
    if os.getuid() != 0:
        print("make hub runs as root (sudo make hub): the hub starts each person's JupyterLab as their "
              "own Unix account", file=sys.stderr)
        return 1
    config = load_hub_config()  # reads and checks the roster
    users = sorted(config.Authenticator.allowed_users)
    missing = missing_accounts(users)
    if missing:
        print(f"no Unix account for {', '.join(missing)}: create them (useradd -m -K HOME_MODE=0700 NAME; passwd NAME) "
              "or take them out of the roster", file=sys.stderr)
        return 1
    for path in (Path(sys.executable), LIBRARY):  # every person's server needs both
        closed = unreachable(path)
        if closed == Path(os.path.abspath(path)):
            print(f"other accounts cannot read {closed}: chmod o+rx {closed}", file=sys.stderr)
            return 1
        if closed in Path(os.path.abspath(path)).parents:
            print(f"other accounts cannot enter {closed}, on the way to {path}: no one's server could start. "
                  "Keep the course in a folder every account can enter, e.g. /srv/imgrec owned by an "
                  f"instructor (docs/INSTRUCTOR_GUIDE.md), or chmod o+x {closed}", file=sys.stderr)
            return 1
        if closed:
            print(f"{path} leads to {path.resolve()}, in {closed}, which other accounts cannot enter: make the "
                  "course's .venv, as the course's owner, from a Python 3.11.5 or later that every account can "
                  "run, e.g. one in /opt (docs/INSTRUCTOR_GUIDE.md: a Python for the class): rm -rf .venv; "
                  "make install PYTHON=/opt/python/cpython-3.11.../bin/python3.11", file=sys.stderr)
            return 1
    course = Path(config.JupyterHub.services[0]["cwd"])
    owner = course.stat().st_uid
    venv = Path(os.path.abspath(sys.executable)).parents[1]  # make hub runs .venv/bin/python
    proxy = Path(config.ConfigurableHTTPProxy.command[0]).parents[1]  # hub/node_modules
    not_owners = [path for path in (venv, proxy) if path.exists() and someone_elses(path, owner)]
    if owner != 0 and not_owners:
        name = pwd.getpwuid(owner).pw_name
        print(f"{' and '.join(map(str, not_owners))} should be {name}'s, like the course (were they built by "
              f"sudo make?): chown -R {name}: {' '.join(map(str, not_owners))}, then run make install and make hub-proxy "
              f"as {name} before sudo make hub (docs/INSTRUCTOR_GUIDE.md)", file=sys.stderr)
        return 1
    if owner == 0:
        print(f"warning: {course} is root's, so the course service runs as root and every instructor in the roster "
              f"gets a root terminal: give the course to an instructor, chown -R INSTRUCTOR: {course}. Either way, "
              "root runs the course folder's files at each make hub, so every instructor can act as root: list "
              "as instructors only people you trust with this machine (docs/INSTRUCTOR_GUIDE.md)", file=sys.stderr)
    accounts = {name: pwd.getpwnam(name) for name in users}
    readable = open_homes({name: Path(a.pw_dir) for name, a in accounts.items()},
                          {name: set(os.getgrouplist(name, a.pw_gid)) for name, a in accounts.items()})
    if readable:
        print(f"warning: other accounts can read the home folders of {', '.join(readable)}, where their notebooks "
              "and feedback are: a student could copy a classmate's answers. Close them: "
              f"chmod 700 {' '.join(accounts[name].pw_dir for name in readable)} (docs/INSTRUCTOR_GUIDE.md)",
              file=sys.stderr)
    exchange = Path(config.Spawner.environment["IMGREC_EXCHANGE"])
    make_folders(exchange, Path(config.JupyterHub.cookie_secret_file).parent)
    roster = Path(os.environ.get("IMGREC_HUB_ROSTER", HUB / "roster.txt"))  # as in hub/jupyterhub_config.py
    roster.chmod(0o600)  # the class list: root reads it, its owner edits it, students do not see it
    still_open = close_private(course)
    if still_open:
        print(f"could not close {', '.join(map(str, still_open))} to other accounts (does the file system "
              "keep Unix permissions?): students would see the solutions and each other's work; move the "
              "course to a local folder, e.g. /srv/imgrec", file=sys.stderr)
        return 1
    instructors = [name for group, members in config.JupyterHub.load_groups.items()
                   if group.startswith("formgrade-") for name in members["users"]]
    print(f"exchange {exchange}; closed to students: {', '.join(PRIVATE_FOLDERS + PRIVATE_FILES)}, "
          f"{roster.name}; accounts: {', '.join(users)}; instructors, who can act as root through the course "
          f"folder: {', '.join(instructors) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
