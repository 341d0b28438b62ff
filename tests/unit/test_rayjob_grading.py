"""manifests/rayjob-grading.yaml, up to what runs here: KubeRay would accept it, its entrypoint is a
`servelab grade --ray` command line this version parses for a lab the course has, the course
volume is where the entrypoint reads, and a grading task's declared shape fits a worker pod as
KubeRay advertises it to Ray. And a grading task leaves the grading cluster's settings behind."""

import shlex
from pathlib import Path

import yaml

from servelab.cli._main import build_parser
from servelab.grading import _raygrade
from servelab.grading._labs import lab_names
from servelab.manifests import _kuberay as manifests

MANIFEST = Path(__file__).parents[2] / "manifests" / "rayjob-grading.yaml"


def _job() -> dict:
    return next(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d["kind"] == "RayJob")


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def test_the_validator_finds_nothing_and_the_cluster_asks_for_a_token():
    """servelab's validator (KubeRay's own ValidateRayJobSpec rules, utils/validation.go v1.7.0),
    and Ray token auth on (AuthOptions, apis/ray/v1/raycluster_types.go v1.7.0): submissions run
    code on this cluster."""
    assert [str(f) for f in manifests.validate_file(MANIFEST)] == []
    assert _job()["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"


def test_its_entrypoint_is_a_grade_command_for_a_lab_of_the_course():
    job = _job()
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "servelab"
    args = build_parser().parse_args(argv[1:])
    assert args.func.__name__ == "cmd_grade" and args.ray == "auto"
    assert args.lab in lab_names()
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = [m["mountPath"] for c in head["containers"] for m in c.get("volumeMounts", [])]
    assert args.course in mounts   # the driver reads and writes the course on the volume
    claims = {v["persistentVolumeClaim"]["claimName"] for v in head["volumes"]}
    volume = MANIFEST.with_name("rayjob-grading-volume.yaml")   # kept when the job is deleted
    pvcs = {d["metadata"]["name"] for d in yaml.safe_load_all(volume.read_text())
            if d["kind"] == "PersistentVolumeClaim"}
    assert claims <= pvcs


def test_every_lab_fits_a_grading_pod_once_and_the_head_takes_no_task():
    """KubeRay passes a container's limits to `ray start` as num-cpus and memory
    (controllers/ray/common/pod.go, v1.7.0): that is what a task's shape is matched against."""
    spec = _job()["spec"]["rayClusterSpec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    [group] = spec["workerGroupSpecs"]
    [container] = group["template"]["spec"]["containers"]
    cpus, memory = int(container["resources"]["limits"]["cpu"]), _bytes(container["resources"]["limits"]["memory"])
    for lab in lab_names():
        shape = _raygrade.shape(lab)
        assert shape["num_cpus"] <= cpus and shape["memory"] <= memory < 2 * shape["memory"], lab


def test_images_are_the_course_image_everywhere():
    job = _job()
    spec = job["spec"]
    pods = [spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"], spec["submitterPodTemplate"]["spec"],
            *(g["template"]["spec"] for g in spec["rayClusterSpec"]["workerGroupSpecs"])]
    assert {c["image"] for pod in pods for c in pod["containers"]} == {"servelab-course:latest"}
    dockerfile = (MANIFEST.parents[1] / "docker" / "course.Dockerfile").read_text()
    assert "-t servelab-course" in dockerfile and "make install" in dockerfile


def test_a_grading_task_leaves_the_grading_cluster_behind():
    from servelab.cluster._localray import RAY_SITE

    env = {"RAY_ADDRESS": "10.0.0.1:6379", "RAY_AUTH_TOKEN_PATH": "/t", "RAY_JOB_ID": "01000000",
           "SERVELAB_CLUSTER_DIR": "/tmp/x", "SERVELAB_PROFILE": "small", "SERVELAB_FAULT_DIR": "/tmp/x/faults",
           "PYTHONPATH": f"{RAY_SITE}:/opt/extra", "HOME": "/home/learner", "SERVELAB_TMPDIR": "/tmp/slg1/s1"}
    clean = _raygrade.without_grading_cluster(env)
    assert clean == {"PYTHONPATH": "/opt/extra", "HOME": "/home/learner", "SERVELAB_TMPDIR": "/tmp/slg1/s1"}
    assert "OMP_NUM_THREADS" not in _raygrade.without_grading_cluster({"OMP_NUM_THREADS": "1"})  # Ray's, per task
    assert "PYTHONPATH" not in _raygrade.without_grading_cluster({"PYTHONPATH": RAY_SITE})
