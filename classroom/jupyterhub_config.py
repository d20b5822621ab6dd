"""JupyterHub for a classroom on one machine: one JupyterLab server per student, shared servers.

Every student gets a JupyterLab server of their own, in a container of their own (DockerSpawner,
image `cqrs-classroom-singleuser`, built by docker-compose.classroom.yml), with this package
installed and the course in `~/course`. Their notebooks' stacks all use the same PostgreSQL,
RabbitMQ and MongoDB, each in a namespace of its own (derived from the student's name, which
JupyterHub gives every server as JUPYTERHUB_USER). A server nobody used for an hour is stopped
by the idle culler, and its stacks die with its kernels.

Everything is set from the environment (docker-compose.classroom.yml sets it; classroom/README.md
lists it). tests/e2e/test_jupyterhub.py runs this file with the spawner, the authenticator and the
addresses replaced by local ones.
"""

import os
import sys

c = get_config()  # noqa: F821 (JupyterHub's config loader provides it)


def setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


# -- the shared servers: every student's stacks use the same three ----------------------------------
# Handed to every single-user server, and from its kernels to every process a notebook starts.
SHARED_SERVERS = ("CQRS_DATABASE_URL", "CQRS_AMQP_URL", "CQRS_MONGO_URL")
c.Spawner.environment = {name: os.environ[name] for name in SHARED_SERVERS if os.environ.get(name)}

# -- each student's server ------------------------------------------------------------------------
# The course is copied into ~/course before the server starts, without overwriting what the
# student changed (cqrs_demo.course.handout); the server opens on it.
COURSE = setting("CLASSROOM_COURSE_DIR", "/srv/course/student")
c.Spawner.cmd = ["python", "-m", "cqrs_demo.course.handout", COURSE, "course", "--", "jupyterhub-singleuser"]
c.Spawner.default_url = "/lab/tree/course"
c.Spawner.args = [
    # A kernel no browser tab is connected to, idle for this long, is shut down, and its stack
    # with it: a student who closed the tab does not keep four processes running for the class.
    f"--MappingKernelManager.cull_idle_timeout={setting('CLASSROOM_KERNEL_IDLE_SECONDS', '1800')}",
    "--MappingKernelManager.cull_interval=120",
]
# Enforced by spawners that can (DockerSpawner, KubeSpawner, SystemdSpawner); a plain local
# process spawner only reports them to the server. Sized from benchmarks/results/classroom.json.
c.Spawner.mem_limit = setting("CLASSROOM_MEM_LIMIT", "1G")
c.Spawner.cpu_limit = float(setting("CLASSROOM_CPU_LIMIT", "1.0"))
c.Spawner.start_timeout = 120  # the first start of an image on a busy machine
c.Spawner.http_timeout = 60

# One container per student, on the network of the shared servers, their home in a volume that
# outlives the container.
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = setting("CLASSROOM_IMAGE", "cqrs-classroom-singleuser:latest")
c.DockerSpawner.network_name = setting("CLASSROOM_NETWORK", "cqrs-classroom")
c.DockerSpawner.notebook_dir = "/home/student"
c.DockerSpawner.volumes = {"cqrs-classroom-home-{username}": "/home/student"}
c.DockerSpawner.remove = True  # the container goes when the server stops; the home volume stays
c.DockerSpawner.pull_policy = "never"  # the image is built locally, by compose

# -- the hub --------------------------------------------------------------------------------------
# It listens on every interface of its container, so the students' containers reach it by its
# service name.
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = setting("CLASSROOM_HUB_HOST", "hub")
c.JupyterHub.bind_url = setting("CLASSROOM_URL", "http://0.0.0.0:8000")
DATA = setting("CLASSROOM_DATA_DIR", "/srv/jupyterhub")
c.JupyterHub.db_url = f"sqlite:///{DATA}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{DATA}/jupyterhub_cookie_secret"

# Students pick a name and share the class password; instructors (admins) have their own.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = setting("CLASSROOM_PASSWORD", "")
c.SharedPasswordAuthenticator.admin_password = setting("CLASSROOM_ADMIN_PASSWORD", "")
c.Authenticator.admin_users = {name.strip() for name in setting("CLASSROOM_INSTRUCTORS", "").split(",") if name.strip()}
c.Authenticator.allow_all = True  # anyone with the class password, under any name

# -- the idle culler -------------------------------------------------------------------------------
# Stops a server with no activity (no kernel running code, no browser talking to it) for an hour,
# and so its kernels and their stacks. With only the scopes it needs.
IDLE_SECONDS = setting("CLASSROOM_IDLE_SECONDS", "3600")
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={IDLE_SECONDS}"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
