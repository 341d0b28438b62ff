"""Practice questions for the lessons, each with an explanation shown once the learner answers.

Lessons call `ask(key)`: radio buttons, and the explanation of the chosen option appears as
soon as one is picked. These are formative: every option's explanation is here in plain text,
and a learner who reads this file learns why each option is right or wrong, which is the
point.

The graded quiz (grading/source/quiz-scenarios) asks other questions, and nothing of it is
here: its options are in the quiz notebook, its answers and explanations only in its hidden
tests, which reach the learner with the graded feedback.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import ipywidgets as widgets


@dataclass(frozen=True)
class Question:
    key: str
    prompt: str
    choices: dict[str, str]   # letter -> option
    why: dict[str, str]       # letter -> what choosing it means
    answer: str
    lesson: str               # the notebook that teaches it


def _question(key, lesson, prompt, options, right):
    choices = {letter: text for letter, (text, _) in options.items()}
    why = {letter: reason for letter, (_, reason) in options.items()}
    return Question(key, prompt, choices, why, right, lesson)


QUESTIONS: dict[str, Question] = {q.key: q for q in [
    _question(
        "route", "08-monitoring-and-debugging",
        "A RayService for a RAG endpoint is deployed. `kubectl get pods` shows the head and "
        "workers Running, but every request gets *404 route not found*. What do you check first?",
        {"a": ("Add worker pods: the cluster is too small.",
               "Capacity does not make routes. A 404 is an answer, from Serve's proxy: the cluster is up."),
         "b": ("The Serve application's status and its `route_prefix`, against the URL you call.",
               "Right. Pods Running means Kubernetes and KubeRay did their part. The proxy answered, "
               "so look at what Serve was asked to serve: an application that never deployed "
               "(DEPLOY_FAILED) or a different prefix both give exactly this."),
         "c": ("Restart the KubeRay operator.",
               "The operator already made the cluster; restarting it changes nothing the proxy sees."),
         "d": ("Raise the proxy's request timeout.",
               "Timeouts give 504s or 408s, not a 404: no request reached a replica.")},
        "b"),
    _question(
        "gpu-pending", "05-multi-stage-resources",
        "A Generator asks for `num_gpus: 1` per replica and may autoscale to 4 replicas. The "
        "cluster has 2 GPUs, and under load two replicas stay pending. What do you change?",
        {"a": ("Give each replica `num_gpus: 0.5` so that four fit.",
               "They would fit in the accounting, but two generators per device compete for its memory "
               "and compute. Only do this after measuring it."),
         "b": ("Make the replica bound and the GPU capacity agree: cap `max_replicas` at the GPUs the "
               "cluster can have, or raise the GPU worker group's maxReplicas so Ray's autoscaler can add pods.",
               "Right. A replica that needs a whole device waits until one exists. Either the "
               "deployment asks for no more than the cluster can give, or the cluster can grow to it."),
         "c": ("Raise `target_ongoing_requests` so fewer replicas are wanted.",
               "It hides the symptom by queueing more per replica; the cap is still impossible to reach."),
         "d": ("Move the Generator to CPU workers.",
               "It removes the pending replicas and the reason to have GPUs: latency would jump.")},
        "b"),
    _question(
        "queue-stage", "05-multi-stage-resources",
        "A pipeline has a fast normalizer, a moderate retriever and a slow generator. Latency rises "
        "under traffic; the generator's ongoing requests climb while normalizer replicas idle. "
        "What do you change first?",
        {"a": ("Add normalizer replicas: requests enter there.",
               "The normalizer is idle: more of it moves requests faster into the generator's queue."),
         "b": ("Add pods to every worker group.",
               "More nodes help only if the generator can use them; the rest is spend without effect."),
         "c": ("Scale the generator: more replicas (autoscaling on its ongoing requests) or bigger batches.",
               "Right. The queue forms at the stage that cannot keep up, so capacity goes there."),
         "d": ("Scale the Kubernetes Service in front of the proxy.",
               "A Service is a load balancer, not capacity: it cannot make the generator faster.")},
        "c"),
    _question(
        "fractional-gpu", "07-autoscaling-batching-gpu",
        "Four reranker replicas share one GPU with `num_gpus: 0.25` each. The service starts, but p99 "
        "latency is unstable under realistic traffic. What does this tell you?",
        {"a": ("Ray enforces a quarter of the GPU's memory and compute per replica, so this is a Ray bug.",
               "Ray does not partition the device: it only counts shares when placing replicas."),
         "b": ("Fractional GPUs are scheduling bookkeeping: the replicas fit, but they contend for the "
               "same device, so measure, colocate fewer, batch differently or give larger fractions.",
               "Right. 0.25 means 'four of these may be placed here', not isolation. The replicas "
               "compete for compute and memory bandwidth, and the tail shows it."),
         "c": ("Kubernetes split the GPU into four isolated slices, so the model is too large for one.",
               "Nothing was split: the same physical device serves all four replicas."),
         "d": ("The replicas need more CPUs; the GPU share is irrelevant.",
               "CPU may matter too, but the symptom appeared when four replicas began sharing a device.")},
        "b"),
    _question(
        "stack-choice", "09-choosing-a-serving-stack",
        "A platform team runs KServe for single-model endpoints. A product team proposes Ray Serve for "
        "a document workflow with OCR, retrieval, reranking and generation, each with different "
        "resource needs. How do you evaluate the proposal?",
        {"a": ("Reject it: one organisation, one serving stack.",
               "Consistency has value, but the workflow's shape is the question, and you have not asked it."),
         "b": ("Accept it and migrate every KServe endpoint to Ray Serve.",
               "The single-model endpoints work; moving them adds risk without a reason."),
         "c": ("Judge it by the workload: Python composition of stages with different CPU/GPU shapes "
               "suits Ray Serve; keep KServe where it fits; count the cost of operating a second stack.",
               "Right. Ray Serve earns its place where composition and heterogeneous resources are the "
               "hard part. The price is real: the KubeRay operator, Ray upgrades, new on-call knowledge."),
         "d": ("Benchmark one model on both and pick the lower latency.",
               "A single model is exactly what both do well; it says nothing about a four-stage pipeline.")},
        "c"),
    _question(
        "target-latency", "07-autoscaling-batching-gpu",
        "To keep an expensive LLM deployment's GPUs busier, a learner raises `target_ongoing_requests` "
        "from 2 to 12. Throughput rises a little; user-facing latency becomes unacceptable. Why?",
        {"a": ("Each replica now holds up to 12 requests before Serve adds another: the device is busier, "
               "and every request waits behind more of them. Utilisation was bought with latency.",
               "Right. The target is the queue you accept per replica. Higher targets mean fewer "
               "replicas and fuller devices, and longer waits for each user."),
         "b": ("Serve ignored the field and used its default.",
               "Then nothing would have changed. (It would be ignored under the old name "
               "`target_num_ongoing_requests_per_replica`, which Ray 2.60 drops silently.)"),
         "c": ("The GPU ran out of memory.",
               "Out-of-memory errors crash replicas; this service answered, only slowly."),
         "d": ("The HTTP proxy limits how many connections it accepts.",
               "The proxy was not the bottleneck before, and the change was on the deployment.")},
        "a"),
    _question(
        "upgrade-imports", "08-monitoring-and-debugging",
        "After a Ray image upgrade the RayCluster reconciles, but Serve replicas fail at start-up with "
        "import errors. Kubernetes resources did not change. Which layer, and what evidence?",
        {"a": ("Kubernetes scheduling: check node capacity and events.",
               "Pods were scheduled and Ray started in them; the failure is inside a replica."),
         "b": ("KubeRay: reinstall the operator.",
               "The operator did its job: the cluster reconciled."),
         "c": ("Application code and its dependencies in the new image: read the DEPLOY_FAILED message "
               "and the replica log's traceback, and compare package versions in the old and new image.",
               "Right. An ImportError while constructing a replica is the application layer. The "
               "traceback names the module; the image's package list says what changed."),
         "d": ("Serve autoscaling: the new image changed its defaults.",
               "Autoscaling never runs for replicas that cannot start.")},
        "c"),
    _question(
        "copied-code", "10-packaging-for-production",
        "For a demo, a team copies `rag_app.py` into the Ray head pod and runs `serve run` by hand. It "
        "works until the pod restarts, and then the endpoint is gone. What is the production fix?",
        {"a": ("Mount a hostPath volume on the head and copy the file there.",
               "It ties the service to one node's disk and still needs a human to copy the file."),
         "b": ("Build the code (and model files) into a versioned image and reference it from the "
               "RayService with a stable `import_path`.",
               "Right. Every pod started from the image has the code, KubeRay redeploys the "
               "application after a restart, and a new version is a new image tag."),
         "c": ("Set the head pod's restartPolicy to Never.",
               "Then the pod stays dead instead of coming back empty."),
         "d": ("Run `serve run` from a postStart hook that downloads the file from a laptop.",
               "It depends on a laptop, and nothing records which version is running.")},
        "b"),
    _question(
        "predict-middle", "02-ray-and-kuberay",
        "Predict: a request passes through three Serve deployments and the middle one is slow. What "
        "should scale first?",
        {"a": ("The Kubernetes Service.", "A Service adds no model capacity."),
         "b": ("The Ray head pod.", "The head runs the controller and proxy, not the slow stage."),
         "c": ("The slow Serve deployment.",
               "Right. Requests queue in front of the stage that cannot keep up; replicas of that "
               "deployment drain the queue."),
         "d": ("Every worker pod.", "Pods for stages that are idle are spend without effect.")},
        "c"),
    _question(
        "predict-replicas", "01-ray-serve-basics",
        "Predict: a deployment has `num_replicas=2`, and one client sends one request at a time. "
        "How does latency compare with one replica?",
        {"a": ("Half: two replicas split the work.",
               "One request is handled by one replica; there is nothing to split."),
         "b": ("About the same: replicas add concurrency and availability, not speed for one request.",
               "Right. The second replica helps when requests overlap or one replica is busy or gone."),
         "c": ("Twice as long: the load balancer must ask both replicas.",
               "Serve routes each request to one replica; routing costs well under a millisecond."),
         "d": ("The deployment fails: two replicas need two nodes.",
               "Replicas of a deployment share nodes whenever resources allow.")},
        "b"),
    _question(
        "triton-fit", "09-choosing-a-serving-stack",
        "A team serves one ONNX vision model on GPUs at thousands of requests per second. Latency "
        "budgets are tight and there is no pipeline around the model. Which stack fits best?",
        {"a": ("Ray Serve: it autoscales per deployment.",
               "It would work, but a single model gains nothing from composition, and a Python "
               "replica leaves GPU throughput that a C++ server with dynamic batching takes."),
         "b": ("Triton Inference Server (alone, or as KServe's runtime).",
               "Right. One supported model, peak GPU throughput: Triton's instance groups and "
               "dynamic batching are built for exactly this."),
         "c": ("A plain FastAPI service.",
               "Simple to run, but it batches nothing and leaves the GPU mostly idle between calls."),
         "d": ("Seldon Core, for its graphs.",
               "There is no graph to build: one model, one endpoint.")},
        "b"),
    _question(
        "plain-http-fit", "09-choosing-a-serving-stack",
        "A four-person team serves one 50 MB scikit-learn model on CPUs at 20 requests per second. "
        "What should they run?",
        {"a": ("Ray Serve on KubeRay, to be ready for growth.",
               "An operator and a distributed runtime to serve one small model is cost paid now "
               "for needs that may never come."),
         "b": ("KServe with Knative, for scale-to-zero.",
               "Reasonable if the organisation already runs KServe; new, it is a platform for one model."),
         "c": ("Triton, for speed.",
               "The model is small and on CPU; speed is not the problem."),
         "d": ("A plain HTTP service in a Kubernetes Deployment, scaled by an HPA.",
               "Right. Nothing new to operate, and a Deployment scales one stateless model well. "
               "Revisit when stages or GPUs appear.")},
        "d"),
]}


def _inline(text: str) -> str:
    """Escaped HTML with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _question_for(key: str) -> Question:
    if key not in QUESTIONS:
        raise KeyError(f"no quiz question {key!r}; known: {', '.join(QUESTIONS)}")
    return QUESTIONS[key]


def explain(key: str, letter) -> str:
    """HTML: whether `letter` is right and why (or which letters there are)."""
    q = _question_for(key)
    if letter not in q.choices:  # graded as written: "B" or " b" is not "b"
        options = ", ".join(f'"{c}"' for c in q.choices)
        return f"<p>Answer with one lower-case letter in quotes: {options}.</p>"
    right = letter == q.answer
    colour, verdict = ("#1a7f37", "Right") if right else ("#b35900", "Not this one")
    body = _inline(q.why[letter].removeprefix("Right. "))
    return (f'<div style="border-left:4px solid {colour};padding:4px 10px">'
            f'<b style="color:{colour}">{verdict}</b> ({letter}) {body}</div>')


def ask(key: str) -> widgets.VBox:
    """The question with its options; the explanation appears when one is picked."""
    q = _question_for(key)
    buttons = widgets.RadioButtons(options=[(f"{c}) {t.replace('`', '')}", c) for c, t in q.choices.items()],
                                   value=None, layout=widgets.Layout(width="100%"))
    shown = widgets.HTML()
    buttons.observe(lambda change: setattr(shown, "value", explain(key, change["new"])), names="value")
    return widgets.VBox([widgets.HTML(f"<p><b>{_inline(q.prompt)}</b></p>"), buttons, shown])
