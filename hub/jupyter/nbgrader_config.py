"""nbgrader's settings for everyone on the hub: the students' and instructors' own servers and the
course service (formgrader). JupyterHub points JUPYTER_CONFIG_PATH here (hub/jupyterhub_config.py);
the course's own settings (notebooks, grading) are in the course folder's nbgrader_config.py.
"""

import os

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821  (nbgrader provides get_config)

c.CourseDirectory.course_id = "imgrec"
c.Exchange.root = os.environ.get("IMGREC_EXCHANGE", "/srv/nbgrader/exchange")

if os.environ.get("JUPYTERHUB_USER"):  # a person's own server (not the course service)
    # Their courses are the hub groups they belong to: nbgrader-<course> or formgrade-<course>.
    c.Authenticator.plugin_class = JupyterHubAuthPlugin
    # A submission is signed with the hub's name for its user: the Unix name when each server runs
    # as its own account, and nbgrader's rule in containers, where everyone is `jovyan`. (In the
    # course service student_id stays "*": every student.)
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
