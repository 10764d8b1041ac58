"""Before `make hub` starts JupyterHub: the exchange folder, the hub's state folder, the course's
instructor-only files closed to other accounts, and a check that every account in the roster exists
on this machine and can run the course's Python (the hub starts each one's server as that Unix
user). Run as root, with the same IMGREC_HUB_* variables as hub/jupyterhub_config.py.

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


def main() -> int:
    if os.getuid() != 0:
        print("make hub runs as root (sudo make hub): the hub starts each person's JupyterLab as their "
              "own Unix account", file=sys.stderr)
        return 1
    config = load_hub_config()  # reads and checks the roster
    users = sorted(config.Authenticator.allowed_users)
    missing = missing_accounts(users)
    if missing:
        print(f"no Unix account for {', '.join(missing)}: create them (useradd -m NAME; passwd NAME) "
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
                  "course's .venv from a Python every account can run (rm -rf .venv; make install "
                  "PYTHON=/usr/bin/python3)", file=sys.stderr)
            return 1
    course = Path(config.JupyterHub.services[0]["cwd"])
    if course.stat().st_uid == 0:
        print(f"warning: {course} is root's, so the course service runs as root and every instructor gets a "
              f"root terminal: give it to an instructor, chown -R INSTRUCTOR: {course} (docs/INSTRUCTOR_GUIDE.md)", file=sys.stderr)
    exchange = Path(config.Spawner.environment["IMGREC_EXCHANGE"])
    make_folders(exchange, Path(config.JupyterHub.cookie_secret_file).parent)
    still_open = close_private(course)
    if still_open:
        print(f"could not close {', '.join(map(str, still_open))} to other accounts (does the file system "
              "keep Unix permissions?): students would see the solutions and each other's work; move the "
              "course to a local folder, e.g. /srv/imgrec", file=sys.stderr)
        return 1
    print(f"exchange {exchange}; closed to students: {', '.join(PRIVATE_FOLDERS + PRIVATE_FILES)}; "
          f"accounts: {', '.join(users)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
