"""hub/prepare.py, what `make hub` runs before JupyterHub, on temporary folders (no hub started):
it closes the instructors' files of the course folder and the roster to every other account, makes
the exchange like /tmp, finds a folder that would keep each person's server from starting and home
folders that classmates could read; and hub/jupyter/nbgrader_config.py tells the course service
from a person's server."""

import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hub"))
from prepare import PRIVATE_FILES, PRIVATE_FOLDERS, close_private, make_folders, open_homes, unreachable  # noqa: E402


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_course_folder_stays_open_and_what_only_instructors_may_see_is_closed(tmp_path):
    course = tmp_path / "course"
    for name in ("solutions/01_convolution", "lessons/01_convolution", "submitted/ana", ".git", "imgrec_lib"):
        (course / name).mkdir(parents=True)
    (course / "solutions" / "01_convolution" / "01_convolution.ipynb").write_text("{}")
    for folder in (course, course / "solutions", course / "submitted", course / ".git"):
        folder.chmod(0o755)  # as a git clone under the default umask leaves them

    assert close_private(course) == []

    for name in PRIVATE_FOLDERS:  # made where missing (autograded/, feedback/), closed everywhere
        assert mode(course / name) == 0o700, name
    assert mode(course / ".git") == 0o700  # git's history holds the solutions too
    for name in PRIVATE_FILES:  # the gradebook, grades.csv, the grading report, nbgrader's log
        assert mode(course / name) == 0o600 and (course / name).stat().st_size == 0, name
    assert (course / "gradebook.db").stat().st_uid == course.stat().st_uid  # the course service's account
    assert mode(course) == 0o755 and mode(course / "lessons") == 0o755  # everyone's Python and lessons
    assert not (course / "source").exists()  # nbgrader's default names: closed only where present


def test_an_existing_gradebook_is_kept_and_closed(tmp_path):
    (tmp_path / "gradebook.db").write_bytes(b"grades")
    (tmp_path / "gradebook.db").chmod(0o644)
    assert close_private(tmp_path) == []
    assert mode(tmp_path / "gradebook.db") == 0o600 and (tmp_path / "gradebook.db").read_bytes() == b"grades"


def test_prepare_makes_the_exchange_like_tmp_and_the_hubs_state_for_root_only(tmp_path):
    make_folders(tmp_path / "srv" / "exchange", tmp_path / "state")
    assert mode(tmp_path / "srv" / "exchange") == 0o1777
    assert mode(tmp_path / "state") == 0o700


@pytest.fixture
def home():
    """A home folder with a course whose .venv/bin/python links to the system's Python (here
    TOP/usr/bin/python3), all in folders of mode 0755 under TOP (not pytest's folder, which is 0700)."""
    with tempfile.TemporaryDirectory() as top:
        top = Path(top)
        system = top / "usr" / "bin" / "python3"
        system.parent.mkdir(parents=True)
        system.touch(mode=0o755)
        home = top / "home" / "teach"
        python = home / "course" / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.symlink_to(system)
        for folder in (*python.parents, *system.parents):
            if folder.is_relative_to(top):
                folder.chmod(0o755)
        yield home


def test_a_course_python_that_everyone_can_run_passes(home):
    assert unreachable(home / "course" / ".venv" / "bin" / "python") is None


def test_a_home_of_mode_0750_on_the_way_to_the_courses_python_is_found(home):
    home.chmod(0o750)  # useradd's default on many systems: the link's target is fine, its folder not
    assert unreachable(home / "course" / ".venv" / "bin" / "python") == home


def test_a_python_installed_where_others_cannot_enter_is_found(home):
    root = home.parents[1] / "root"  # as pyenv's Python under /root
    root.mkdir(mode=0o700)
    root.chmod(0o700)
    hidden = root / "python"
    hidden.touch(mode=0o755)
    python = home / "course" / ".venv" / "bin" / "python"
    python.unlink()
    python.symlink_to(hidden)
    assert unreachable(python) == root


def test_a_library_folder_others_cannot_read_is_found(home):
    library = home / "course" / "imgrec_lib"
    library.mkdir(mode=0o700)
    library.chmod(0o700)
    assert unreachable(library) == library
    library.chmod(0o755)
    assert unreachable(library) is None


@pytest.fixture
def hub_settings(home, monkeypatch):
    """`sudo make hub`'s settings for a course in `home`: a roster of root alone (an account that
    exists everywhere), the exchange and the hub's state beside it, and the course's Python taken
    to be the fixture's link (this machine's own Python may live under /root)."""
    top = home.parents[1]
    (top / "roster.txt").write_text("instructor root\n")
    for name, value in {"ROSTER": top / "roster.txt", "COURSE": home / "course", "EXCHANGE": top / "exchange",
                        "STATE": top / "state"}.items():
        monkeypatch.setenv(f"IMGREC_HUB_{name}", str(value))
    monkeypatch.setattr(sys, "executable", str(home / "course" / ".venv" / "bin" / "python"))
    import prepare

    library = home / "course" / "imgrec_lib"  # the course's library, not this clone's (its folder may be 0700)
    library.mkdir(mode=0o755)
    library.chmod(0o755)
    monkeypatch.setattr(prepare, "LIBRARY", library)
    return home


@pytest.mark.skipif(os.getuid() != 0, reason="make hub runs as root")
def test_make_hub_closes_the_course_before_it_starts(hub_settings, capsys):
    import prepare

    course = hub_settings / "course"
    assert prepare.main() == 0
    assert mode(course / "solutions") == 0o700 and mode(course / "gradebook.db") == 0o600
    assert mode(hub_settings.parents[1] / "exchange") == 0o1777
    said = capsys.readouterr()
    assert "course service runs as root" in said.err  # this course folder is root's
    assert "instructors, who can act as root through the course folder: root" in said.out


@pytest.mark.skipif(os.getuid() != 0, reason="make hub runs as root")
def test_make_hub_stops_when_no_ones_server_could_start(hub_settings, capsys):
    import prepare

    hub_settings.chmod(0o750)
    assert prepare.main() == 1
    assert f"other accounts cannot enter {hub_settings}, on the way to" in capsys.readouterr().err
    assert not (hub_settings / "course" / "solutions").exists()  # nothing done before the check passes


@pytest.mark.skipif(os.getuid() != 0, reason="make hub runs as root")
def test_make_hub_closes_the_roster(hub_settings):
    import prepare

    roster = hub_settings.parents[1] / "roster.txt"
    roster.chmod(0o644)  # as `cp roster.example.txt roster.txt` leaves it
    assert prepare.main() == 0
    assert mode(roster) == 0o600  # the class list is no student's business


@pytest.mark.skipif(os.getuid() != 0, reason="make hub runs as root")
def test_make_hub_stops_when_root_built_the_venv_of_an_instructors_course(hub_settings, capsys, monkeypatch):
    import prepare

    course = hub_settings / "course"
    os.chown(course, 65534, 65534)  # the course is an instructor's (here: nobody's); its .venv stays root's
    assert prepare.main() == 1
    error = capsys.readouterr().err
    assert str(course / ".venv") in error and "should be nobody's" in error, error
    assert not (course / "solutions").exists()

    for path in (course / ".venv", *(course / ".venv").rglob("*")):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    hub_config = prepare.load_hub_config  # its proxy in the course's hub/ (this clone's is root's)
    monkeypatch.setattr(prepare, "load_hub_config", lambda: proxy_in(hub_config(), course / "hub"))
    assert prepare.main() == 0  # the owner's .venv
    site = course / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    for folder in (site, site.parent, site.parents[1]):
        os.chown(folder, 65534, 65534)
    assert prepare.main() == 0
    (site / "added_by_root.dist-info").mkdir()  # `sudo make hub` ran pip in the owner's .venv
    assert prepare.main() == 1
    (site / "added_by_root.dist-info").rmdir()
    assert prepare.main() == 0
    deep = site / "torch" / "lib"
    deep.mkdir(parents=True)
    for folder in (deep, deep.parent):
        os.chown(folder, 65534, 65534)
    (deep / "written_by_root.so").touch()  # deep inside, as a root pip upgrade of one package leaves it
    assert prepare.main() == 1


def proxy_in(config, hub: Path):
    """The hub's configuration with its proxy in `hub`/node_modules."""
    config.ConfigurableHTTPProxy.command = [str(hub / "node_modules" / ".bin" / "configurable-http-proxy")]
    return config


def test_home_folders_a_classmate_could_read_are_named(tmp_path):
    homes = {}
    for name, folder_mode in {"ana": 0o755, "bo": 0o700, "cy": 0o711, "dee": 0o750}.items():
        homes[name] = tmp_path / name
        homes[name].mkdir()
        homes[name].chmod(folder_mode)
    alone = {name: set() for name in homes}  # no one in another's group (useradd's own group each)
    assert open_homes(homes, alone) == ["ana", "cy"]  # 0755: Debian's default; 0711 opens the known names
    shared = {**alone, "bo": {homes["dee"].stat().st_gid}}  # bo is in dee's group (e.g. all in `users`)
    assert open_homes(homes, shared) == ["ana", "cy", "dee"]
    homes["dee"].chmod(0o700)
    assert open_homes(homes, shared) == ["ana", "cy"]


def nbgrader_settings(monkeypatch, **env):
    """hub/jupyter/nbgrader_config.py as nbgrader loads it in a server started with `env`."""
    from traitlets.config.loader import PyFileConfigLoader

    for key in ("JUPYTERHUB_USER", "JUPYTERHUB_SERVICE_NAME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT / "hub" / "jupyter")).load_config()


def test_the_course_service_run_as_its_owner_is_not_taken_for_a_student(monkeypatch):
    from nbgrader.auth import JupyterHubAuthPlugin

    # the course folder is an instructor's: JupyterHub runs the service as that account and names it
    service = nbgrader_settings(monkeypatch, JUPYTERHUB_SERVICE_NAME="imgrec", JUPYTERHUB_USER="teach")
    assert "plugin_class" not in service.Authenticator  # formgrader sees every student of the course
    assert "student_id" not in service.CourseDirectory
    assert service.CourseDirectory.course_id == "imgrec"

    student = nbgrader_settings(monkeypatch, JUPYTERHUB_USER="ana")  # a person's own server
    assert student.Authenticator.plugin_class is JupyterHubAuthPlugin  # their courses: their hub groups
    assert student.CourseDirectory.student_id == "ana"
