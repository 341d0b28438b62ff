# The course environment for an instructor's own JupyterHub (manifests/jupyterhub/, docs/jupyterhub.md)
# or `docker run -p 8888:8888`:
# the same pinned packages as `make install`, the student labs generated, JupyterLab on
# the start page. Labs use the local target inside the container.
#
#   docker build -f docker/course.Dockerfile -t servelab-course .
FROM python:3.11-slim

# prometheus: the Prometheus beside each local cluster (lesson 08), with promtool; bubblewrap:
# the grading sandbox, where the container may create user namespaces (docs/grading-on-ray.md)
RUN apt-get update && apt-get install -y --no-install-recommends make prometheus bubblewrap \
 && rm -rf /var/lib/apt/lists/*
# kubectl, for the Kubernetes track (port-forwards to Serve and the dashboard, `kubectl exec`):
# Debian's bookworm has none, so from the Kubernetes project's signed apt repository. Keep its
# minor version within one of your cluster's.
ARG KUBECTL_MINOR=v1.34
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl gpg \
 && mkdir -p /etc/apt/keyrings \
 && curl -fsSL https://pkgs.k8s.io/core:/stable:/${KUBECTL_MINOR}/deb/Release.key \
    | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg \
 && echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/${KUBECTL_MINOR}/deb/ /" \
    > /etc/apt/sources.list.d/kubernetes.list \
 && apt-get update && apt-get install -y --no-install-recommends kubectl \
 && apt-get purge -y curl gpg && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 learner
WORKDIR /home/learner/servelab
COPY --chown=learner . /home/learner/servelab
USER learner
ENV PATH=/home/learner/servelab/.venv/bin:$PATH
# A learner's JupyterLab: nbgrader's learner tools, not the instructor's (jupyter/learner).
ENV JUPYTER_CONFIG_PATH=/home/learner/servelab/jupyter/learner

# One install path for laptops, CI and images: make creates .venv with constraints.txt.
RUN make install labs
# On JupyterHub (manifests/jupyterhub/values.yaml) the pod runs jupyterhub-singleuser, whose
# JupyterHub must match the hub's: chart 4.4.0 runs JupyterHub 5.5. The labs as released are
# kept aside: the hub mounts each learner's volume over labs/ and fills it from here once.
RUN .venv/bin/python -m pip install --quiet -c constraints.txt jupyterhub==5.5.4 \
 && cp -r labs /home/learner/labs-release
# The sources hold every lab's solutions and hidden tests: not in a learner's image
# (instructors grade from their own clone of the repository).
RUN rm -rf grading/source

EXPOSE 8888
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/api', timeout=4)"
CMD ["jupyter", "lab", "--ServerApp.ip=0.0.0.0", "--ServerApp.port=8888", "--no-browser", \
     "--LabApp.default_url=/lab/tree/notebooks/00-start-here.ipynb"]
