"""Jupyter Server settings for everyone's server on the hub (JUPYTER_CONFIG_PATH points here).

A terminal runs bash with hub/jupyter/bashrc: the person's own ~/.bashrc, then the course's
programs first on PATH, so that `python`, `nbgrader` and `make autograde` are the course's. (Under
a spawner Jupyter would start a login shell, and /etc/profile would put the system's PATH back.)
"""

from pathlib import Path

c = get_config()  # noqa: F821  (Jupyter provides get_config)

c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash", "--rcfile", str(Path(__file__).with_name("bashrc"))]}
