# The hub: JupyterHub, its proxy, DockerSpawner and the idle culler; it starts one container of
# cqrs-classroom-singleuser per student through the Docker socket compose mounts.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The proxy (configurable-http-proxy) is a Node program, pinned by node/package-lock.json.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/node
COPY node/package.json node/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
ENV PATH=/opt/node/node_modules/.bin:$PATH

# JupyterHub, the idle culler and DockerSpawner at the versions of requirements.lock (the
# single-user servers run the same JupyterHub), each file checked against its hash.
COPY classroom/hub-requirements.lock /opt/hub/
RUN pip install --require-hashes -r /opt/hub/hub-requirements.lock

WORKDIR /srv/jupyterhub
COPY classroom/jupyterhub_config.py /etc/jupyterhub/jupyterhub_config.py
EXPOSE 8000

CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
