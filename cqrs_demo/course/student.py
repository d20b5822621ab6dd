"""Who is doing the exercises: the name progress is recorded under.

The rule is the classroom's: `CQRS_STUDENT` when set (an override for workshops and tests),
else `JUPYTERHUB_USER` (JupyterHub sets it in every student's single-user server), else the
operating-system user. `cqrs_demo.config.Settings.student` applies the same rule to derive each
student's namespaces; the two must stay identical, so that a student's progress and a student's
stacks carry one name.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping


def current_student(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    for variable in ("CQRS_STUDENT", "JUPYTERHUB_USER"):
        name = (env.get(variable) or "").strip()
        if name:
            return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no LOGNAME
        return f"uid-{os.getuid()}"
