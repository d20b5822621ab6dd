# A student's JupyterLab server: this package and every notebook dependency at the locked
# versions, the course's student edition in /srv/course/student. DockerSpawner starts one
# container of it per student (classroom/jupyterhub_config.py); compose builds it:
#   docker compose -f classroom/docker-compose.classroom.yml build singleuser
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/cqrs-workbench

# Everything the notebooks, the exercises and jupyterhub-singleuser need, each file checked
# against its hash: the whole lock (`make lock`), the same one `make lab` installs.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# The project itself, without resolving again.
COPY pyproject.toml README.md ./
COPY cqrs_demo/ ./cqrs_demo/
RUN pip install --no-deps . && pip check

# The student's edition of the course (`make student`), written from the notebooks here; each
# server copies it into the student's home when it starts (cqrs_demo.course.handout).
COPY notebooks/ ./notebooks/
RUN python -m cqrs_demo.course.edition notebooks /srv/course/student \
    && rm -rf /opt/cqrs-workbench/notebooks build cqrs_workbench.egg-info

# Students never run as root; their home is a volume of its own (DockerSpawner).
RUN useradd --create-home --home-dir /home/student --uid 1000 --user-group student
USER student
WORKDIR /home/student

CMD ["jupyterhub-singleuser"]
