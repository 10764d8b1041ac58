"""nbgrader's settings for everyone on the hub: the students' and instructors' own servers and the
course service (formgrader). JupyterHub points JUPYTER_CONFIG_PATH here (hub/jupyterhub_config.py);
the course's own settings (notebooks, grading) are in the course folder's nbgrader_config.py.
"""

import os

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821  (nbgrader provides get_config)

c.CourseDirectory.course_id = "imgrec"
c.Exchange.root = os.environ.get("IMGREC_EXCHANGE", "/srv/nbgrader/exchange")

# A person's own server. The course service has a JUPYTERHUB_USER too when it runs as the course
# folder's owner (JupyterHub names the account it runs as), so only JUPYTERHUB_SERVICE_NAME, which
# JupyterHub sets for services alone, tells the two apart.
if os.environ.get("JUPYTERHUB_USER") and not os.environ.get("JUPYTERHUB_SERVICE_NAME"):
    # Their courses are the hub groups they belong to: nbgrader-<course> or formgrade-<course>.
    c.Authenticator.plugin_class = JupyterHubAuthPlugin
    # A submission is signed with the hub's name for its user: the Unix name when each server runs
    # as its own account, and nbgrader's rule in containers, where everyone is `jovyan`. (In the
    # course service student_id stays "*": every student.)
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
