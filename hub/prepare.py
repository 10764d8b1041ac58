"""Before `make hub` starts JupyterHub: the exchange folder, the hub's state folder, and a check
that every account in the roster exists on this machine and can run the course's Python (the hub
starts each one's server as that Unix user). Run as root, with the same IMGREC_HUB_* variables as
hub/jupyterhub_config.py.

    python hub/prepare.py
"""

import os
import pwd
import sys
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

HUB = Path(__file__).resolve().parent


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


def missing_accounts(names: list[str]) -> list[str]:
    missing = []
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(name)
    return missing


def unreachable(program: Path) -> Path | None:
    """The first folder above `program` that other accounts may not enter (e.g. a Python installed
    under /root by pyenv), or None: every person's server runs the course's Python."""
    for folder in program.resolve().parents:
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


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
    closed = unreachable(Path(sys.executable))
    if closed:
        print(f"the course's Python ({Path(sys.executable).resolve()}) is in {closed}, which other accounts "
              "cannot enter: make the course's .venv from a Python they can run (e.g. /usr/bin/python3)",
              file=sys.stderr)
        return 1
    exchange = Path(config.Spawner.environment["IMGREC_EXCHANGE"])
    make_folders(exchange, Path(config.JupyterHub.cookie_secret_file).parent)
    print(f"exchange {exchange}; accounts: {', '.join(users)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
