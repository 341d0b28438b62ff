"""The RAG pipeline's knowledge base: short operations notes written for this course.

Each document has an id, a title and a few sentences of advice. They cover the
incidents a team serving models on Ray and Kubernetes meets, so questions about
different failures retrieve different notes. Shipped with the package: nothing
is downloaded.

HELD_OUT is a small relevance set: questions worded the way a user would ask
them (not copied from the notes) with the ids of the notes that answer them.
It measures retrieval (recall@3); nothing in the retriever is tuned on it.
TYPED is a larger, harder one (pasted errors, typos, synonyms, long symptom
descriptions) and UNANSWERABLE holds questions no note answers; bench/retrieval.py
measures all three.
"""

DOCS = [
    # Kubernetes scheduling and pods
    ("KB-001", "Pod stuck in Pending",
     "A pod that stays Pending was not scheduled. kubectl describe pod shows the reason in its events: "
     "insufficient cpu, memory or nvidia.com/gpu, an unmatched node selector, or a taint without a toleration."),
    ("KB-002", "Container killed with OOMKilled",
     "The kernel killed the container because it went over its memory limit. Compare the limit with peak "
     "usage, lower the batch size or the model size, or raise the limit; for Ray pods keep requests equal to limits."),
    ("KB-003", "CrashLoopBackOff after start",
     "The container exits soon after starting and Kubernetes restarts it with growing delays. Read the "
     "previous container's logs with kubectl logs --previous; a missing module or a bad command line is common."),
    ("KB-004", "ImagePullBackOff",
     "The node cannot pull the image: the tag does not exist, the registry needs credentials, or the name is "
     "misspelled. Check the tag, add an imagePullSecret for a private registry."),
    ("KB-005", "Taints and tolerations on GPU nodes",
     "GPU node pools are usually tainted so ordinary pods stay off them. A Ray GPU worker group needs a "
     "toleration for the taint, for example nvidia.com/gpu with effect NoSchedule."),
    ("KB-006", "Node selectors and affinity for worker groups",
     "Pin a worker group to a node pool with a nodeSelector or node affinity on its pod template. A selector "
     "that matches no node leaves the pods Pending forever."),
    ("KB-007", "Evicted pods under node pressure",
     "The kubelet evicts pods when a node runs short of memory or disk. Ephemeral storage from object spilling "
     "and logs counts; set ephemeral-storage requests and move spilling to a volume."),
    ("KB-008", "Readiness and liveness probes",
     "A liveness probe restarts a container that stopped answering; a readiness probe only takes it out of the "
     "Service. Give slow-loading model servers a generous initial delay or a startup probe."),
    ("KB-009", "Resource requests versus limits",
     "The scheduler places pods by their requests; limits cap what they may use. Ray reads the limits to "
     "size a node, so requests lower than limits overcommit the machine."),
    ("KB-010", "Namespace quota exceeded",
     "A ResourceQuota in the namespace can refuse new pods with a forbidden error naming exceeded quota. "
     "Ask for a larger quota or shrink the worker group's requests."),
    # KubeRay operator and custom resources
    ("KB-011", "Installing the KubeRay operator with Helm",
     "Add the kuberay helm repository and install the kuberay-operator chart at a pinned version. Then check "
     "that the RayCluster, RayJob and RayService CRDs exist and the operator deployment is available."),
    ("KB-012", "RayCluster head and worker groups",
     "A RayCluster has one head group and any number of worker groups. Each group is a pod template plus "
     "rayStartParams; replicas, minReplicas and maxReplicas bound how many pods a group may have."),
    ("KB-013", "RayService never becomes Ready",
     "Read the RayService conditions and the application statuses. DEPLOY_FAILED points at the import path "
     "or a constructor error; pending replicas point at worker groups that cannot offer the resources asked for."),
    ("KB-014", "Zero downtime upgrade of a RayService",
     "Changing rayClusterConfig creates a new cluster; traffic moves once the new one is ready and the old one "
     "is deleted. Changing only serveConfigV2 updates the applications in place on the running cluster."),
    ("KB-015", "rayVersion and image tag disagree",
     "The rayVersion field, the image tag and the Ray installed in the image must name the same release. "
     "A mismatch shows up as version errors when workers join the head."),
    ("KB-016", "Operator logs and events",
     "When a custom resource does not progress, read the kuberay-operator pod's logs and kubectl get events in "
     "the namespace. Reconcile errors name the field the operator could not handle."),
    ("KB-017", "Deleting a RayCluster cleanly",
     "Deleting the RayCluster removes its pods and services. If pods linger, look for finalizers or a stuck "
     "node; never delete the operator first."),
    ("KB-018", "Port-forward to the dashboard and Serve",
     "kubectl port-forward to the head service exposes the dashboard on 8265 and Serve on 8000 on your own "
     "machine. Bind it to 127.0.0.1 so nobody else on the network reaches it."),
    # Ray runtime
    ("KB-019", "Worker nodes fail to join the head",
     "Workers connect to the GCS on the head at port 6379. Network policies, a wrong head service name or a "
     "version mismatch keep them out; the worker's raylet log says which."),
    ("KB-020", "Object store full and spilling",
     "When the object store fills, Ray spills objects to disk and performance drops. Pass large inputs by "
     "reference, release references early and size the object store memory."),
    ("KB-021", "Head node lost and GCS fault tolerance",
     "If the head pod dies, the GCS goes with it and, by default, the cluster restarts. With GCS fault "
     "tolerance backed by an external Redis, workers and Serve replicas keep serving while the head comes back."),
    ("KB-022", "Logical resources and custom resources",
     "Ray schedules by logical resources: CPU, GPU, memory and any custom name. They are promises, not "
     "limits; a task asking for 0.5 CPU can still use two cores."),
    ("KB-023", "Infeasible resource requests",
     "A task or actor that asks for more than any node type can offer is infeasible and waits forever. The "
     "autoscaler logs it; fix the request or add a worker group that can satisfy it."),
    ("KB-024", "Reading Ray logs",
     "Each node writes logs under its session directory: raylet, gcs_server, the dashboard and one file per "
     "worker. The dashboard's Logs page shows them without shell access."),
    ("KB-025", "Memory monitor kills tasks",
     "Ray's memory monitor kills a worker when the node runs low on memory, newest first, to protect the "
     "raylet. The error names the killed task; give it a memory requirement so Ray stops overpacking."),
    # Ray Serve configuration
    ("KB-026", "Application fails to deploy after an update",
     "The application status message carries the traceback. Check that the import_path module exists in the "
     "image or runtime_env and that the constructor arguments still match."),
    ("KB-027", "import_path format",
     "import_path names a module and an attribute separated by a colon, such as package.module:app. The "
     "attribute must be a bound application, and the module must be importable on every node."),
    ("KB-028", "Route prefix returns 404",
     "Serve answers 404 when no application owns the path. Check route_prefix in the Serve config, the "
     "application list in serve status, and the port-forward target."),
    ("KB-029", "max_ongoing_requests and queueing",
     "max_ongoing_requests caps how many requests one replica works on at once; the rest wait in the caller's "
     "queue. Too high hides overload inside replicas, too low leaves hardware idle."),
    ("KB-030", "Unknown keys in the Serve config are ignored",
     "Serve silently ignores fields it does not know, so an old or misspelled option deploys with no error. "
     "Lint the config and compare the deployed settings in the Serve REST API."),
    ("KB-031", "Composing deployments with bind",
     "Deployments call each other through handles created by bind. The ingress receives handles to the other "
     "stages in its constructor and awaits their responses; each stage scales on its own."),
    ("KB-032", "Requests time out at the endpoint",
     "Timeouts and 504s mean requests waited too long. Look at ongoing requests per replica; if every replica "
     "is at its cap, add replicas or raise max_replicas, and set request timeouts per stage."),
    ("KB-033", "HTTP 503 no available replicas",
     "A 503 says no replica could take the request: the deployment is scaled to zero, all replicas are "
     "starting, or backpressure rejected it. Keep min_replicas above zero for latency-critical stages."),
    ("KB-034", "Calling a handle before the application runs",
     "A handle only works once its application is deployed. Calling it from a notebook before serve.run "
     "returned fails; get handles from the running application instead."),
    ("KB-035", "Port 8000 already in use",
     "The Serve proxy cannot bind its HTTP port when another process holds it. Find the owner with ss or "
     "lsof, stop it, or choose another port in the HTTP options."),
    ("KB-036", "Passing settings with user_config",
     "user_config is handed to a deployment's reconfigure method and can change without restarting replicas. "
     "Use it for thresholds and feature switches, not for code."),
    # Health and observability
    ("KB-037", "Replica keeps failing its health check",
     "Serve calls check_health on each replica periodically; raising marks it unhealthy and Serve replaces it. "
     "Keep the check quick, and raise health_check_timeout_s if the replica is busy under load."),
    ("KB-038", "The healthz endpoint",
     "Each Serve proxy answers GET /-/healthz with 200 when it is up, and /-/routes lists the routes. Load "
     "balancers and container health checks should poll it."),
    ("KB-039", "Prometheus metrics from Serve",
     "Ray exports metrics for Prometheus on each node: request counters ending in _total, latency histograms "
     "and replica gauges. Scrape the metrics port of every node."),
    ("KB-040", "Tracing a slow request across stages",
     "Time every stage and return the timings with the response, or read the per-deployment latency "
     "histograms. The stage with the longest queue is the one to scale first."),
    ("KB-041", "Dead replicas and restart history",
     "Serve status lists replica states: STARTING, RUNNING, STOPPING. Recently dead replicas and their "
     "causes appear in the controller log and the dashboard's Serve page."),
    ("KB-042", "Dashboard is unreachable",
     "The dashboard listens on the head at port 8265. If it does not answer, check the head pod is running, "
     "the port-forward is alive and the dashboard process did not crash."),
    # Autoscaling
    ("KB-043", "Serve autoscaling fields",
     "autoscaling_config takes min_replicas, max_replicas, initial_replicas and target_ongoing_requests. "
     "Older names such as target_num_ongoing_requests_per_replica are ignored by current Ray."),
    ("KB-044", "target_ongoing_requests trade-off",
     "A low target adds replicas early and keeps latency low at the cost of more hardware; a high target "
     "packs more requests per replica and lets queues and latency grow."),
    ("KB-045", "Upscale and downscale delays",
     "upscale_delay_s and downscale_delay_s decide how long a signal must persist before replicas change. "
     "Short delays react fast but flap; long downscale delays keep capacity through bursts."),
    ("KB-046", "Autoscaler does not add worker nodes",
     "Replicas that cannot be placed create demand for the cluster autoscaler. Check enableInTreeAutoscaling, "
     "the group's maxReplicas, and the autoscaler log for infeasible requests."),
    ("KB-047", "Idle worker nodes are removed",
     "The cluster autoscaler removes a worker after it has been idle for idleTimeoutSeconds, down to the "
     "group's minReplicas. GPU nodes are expensive, so a short idle timeout saves money."),
    ("KB-048", "Scale to zero",
     "min_replicas of zero lets a deployment release all its replicas when idle. The first request then waits "
     "for a cold start, so only idle, latency-tolerant stages should scale to zero."),
    # GPUs
    ("KB-049", "GPU not visible in the container",
     "The NVIDIA device plugin must run on the node and the pod must ask for nvidia.com/gpu in its limits. "
     "Inside a replica, ray.get_gpu_ids lists the devices Ray assigned."),
    ("KB-050", "Fractional GPUs",
     "num_gpus can be a fraction such as 0.25, so four small replicas share one device. Ray does not isolate "
     "their memory: the models must fit together on the card."),
    ("KB-051", "Replica asks for more GPUs than a node has",
     "A replica needing two GPUs on workers that each offer one is never scheduled. Match num_gpus per replica "
     "to the GPUs a worker pod offers, or use a bigger node type."),
    ("KB-052", "CUDA out of memory",
     "CUDA out of memory means the models and activations on the card exceed its memory. Reduce the batch "
     "size, use a smaller precision, or give the replica a whole device."),
    # Batching and performance
    ("KB-053", "Dynamic request batching",
     "serve.batch groups concurrent calls into one list so a model runs once per batch. Tune max_batch_size "
     "and batch_wait_timeout_s: bigger batches raise throughput, waiting adds latency."),
    ("KB-054", "Where the queue forms in a pipeline",
     "In a chain of stages the slowest one builds the queue and sets the throughput. Measure per-stage latency "
     "and ongoing requests, then scale that stage, not the ingress."),
    ("KB-055", "Cold start of model replicas",
     "A new replica must start a worker, import code and load weights before it answers. Bake model files into "
     "the image and warm up in the constructor so first requests are fast."),
    ("KB-056", "Large request bodies",
     "Reject oversized bodies at the ingress with 413 before parsing them. Limit text length in the request "
     "model so one request cannot tie up a replica."),
    # Packaging and production
    ("KB-057", "Code copied into the head pod disappears",
     "Files copied into a running pod live only in that container. A restart brings back the image's files, so "
     "ship the application in the image or a runtime_env package."),
    ("KB-058", "Container HEALTHCHECK for a model server",
     "A container health check that polls /-/healthz needs a start period long enough for model loading; "
     "otherwise the container is restarted before it ever serves."),
    ("KB-059", "Memory per replica",
     "Give replicas a memory requirement in ray_actor_options so Ray does not pack more models onto a node "
     "than its RAM holds. Measure a replica's peak memory under load first."),
    ("KB-060", "Choosing a serving stack",
     "Ray Serve fits pipelines of Python stages with their own scaling; Triton fits optimized single models; "
     "KServe fits per-model services on Kubernetes. Pick by workload shape and operational cost."),
]

# What the retrievers index: each note's title and text.
TEXTS = [f"{title} {text}" for _, title, text in DOCS]

# Questions worded as users ask them, with the note ids that answer them.
HELD_OUT = [
    ("my worker pods never get scheduled and sit in pending", {"KB-001"}),
    ("container restarted because it ran out of memory", {"KB-002"}),
    ("kubernetes keeps restarting my container right after it starts", {"KB-003"}),
    ("image can't be pulled from our private registry", {"KB-004"}),
    ("gpu nodes have a taint, how do ray workers land there", {"KB-005"}),
    ("how do I install kuberay operator using helm", {"KB-011"}),
    ("rayservice stuck, application says DEPLOY_FAILED", {"KB-013", "KB-026"}),
    ("will I get downtime when I change the cluster config of a rayservice", {"KB-014"}),
    ("workers cannot connect to the gcs on the head", {"KB-019"}),
    ("object store is full and ray spills to disk", {"KB-020"}),
    ("what happens to serving when the head pod is lost", {"KB-021"}),
    ("actor waits forever because no node can satisfy its request", {"KB-023", "KB-051"}),
    ("what should import_path look like", {"KB-027"}),
    ("serve gives 404 for my route", {"KB-028"}),
    ("I misspelled an option in serveConfigV2 and nothing complained", {"KB-030"}),
    ("how do stages of a pipeline call each other", {"KB-031"}),
    ("getting 504 gateway timeouts under load", {"KB-032"}),
    ("503 error no replicas available after scaling to zero", {"KB-033", "KB-048"}),
    ("address already in use when serve starts on port 8000", {"KB-035"}),
    ("change a threshold without restarting replicas", {"KB-036"}),
    ("replica marked unhealthy and replaced repeatedly", {"KB-037"}),
    ("which url should a load balancer poll for health", {"KB-038", "KB-058"}),
    ("where are serve request counters and latency histograms", {"KB-039"}),
    ("autoscaling field target_num_ongoing_requests_per_replica has no effect", {"KB-043"}),
    ("lower target ongoing requests means more replicas and lower latency?", {"KB-044"}),
    ("cluster autoscaler never adds a new worker node", {"KB-046"}),
    ("share one gpu between several small models", {"KB-050"}),
    ("cuda out of memory on the card", {"KB-052"}),
    ("batch concurrent requests to raise throughput", {"KB-053"}),
    ("which stage in my pipeline should I scale first", {"KB-054"}),
    ("my files copied into the head pod vanished after it restarted", {"KB-057"}),
    ("triton or kserve or ray serve, which to pick", {"KB-060"}),
]

# A harder set, written later and apart from the retriever: questions as people type them into
# a support box (pasted error messages, typos, other words for the same thing, long
# descriptions of a symptom), with the notes that answer them.
TYPED = [
    ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available", {"KB-001"}),
    ("hi, new to this. applied the yaml, kubectl get pods shows the head fine but the workers just sit "
     "there Pending for ages, what did I do wrong?", {"KB-001"}),
    ("my ray worker pod keeps getting OOMKilled, exit code 137, during big batches", {"KB-002"}),
    ("Back-off restarting failed container ray-worker in pod", {"KB-003"}),
    ('Failed to pull image "rayproject/ray:2.60.0-py31": manifest unknown', {"KB-004"}),
    ("gpu machines have a taint and my ray pods wont go there", {"KB-005"}),
    ("how do I make the gpu worker group run only on the a100 node pool", {"KB-006"}),
    ("The node was low on resource: ephemeral-storage. Container ray-worker was using 12Gi", {"KB-007"}),
    ("model server gets restarted by its probe before it finished loading the weights", {"KB-008", "KB-058"}),
    ("requests vs limits whats the difference, ray sees the wrong number of cpus", {"KB-009"}),
    ('Error creating: pods "rc-worker-x" is forbidden: exceeded quota: compute-resources', {"KB-010"}),
    ("helm instal kuberay operater", {"KB-011"}),
    ("what do minReplicas and maxReplicas mean in workerGroupSpecs", {"KB-012"}),
    ("my rayservice has not been ready for twenty minutes and I can't tell why", {"KB-013"}),
    ("roll out a new image for the rayservice without dropping traffic", {"KB-014"}),
    ("version mismatch: the cluster runs ray 2.59 but the worker has 2.60", {"KB-015", "KB-019"}),
    ("kuberay isnt doing anything with my custom resource, where do I see what it thinks", {"KB-016"}),
    ("deleting the raycluster hangs, pods stuck terminating", {"KB-017"}),
    ("how do I open the ray dashboard from my laptop when the cluster is remote", {"KB-018", "KB-042"}),
    ("workers time out connecting to head-svc:6379", {"KB-019"}),
    ("Spilled 3400 MiB, 12 objects, write throughput 80 MiB/s, everything got slow", {"KB-020"}),
    ("the head pod was deleted and every serve app went down, can it survive that", {"KB-021"}),
    ("I set num_cpus=0.5 but the task uses 2 cores, is ray not enforcing it?", {"KB-022"}),
    ("Warning: The following resource request cannot be scheduled right now: {'GPU': 4.0}", {"KB-023", "KB-051"}),
    ("where are the raylet logs on the node", {"KB-024"}),
    ("Task was killed due to the node running low on memory. Memory on the node was 28GB", {"KB-025"}),
    ("after changing the config the app says DEPLOY_FAILED with a traceback", {"KB-026", "KB-013"}),
    ("ModuleNotFoundError: No module named 'myapp' when serve imports my application",
     {"KB-026", "KB-027", "KB-057"}),
    ("import path is module colon something? what goes after the colon", {"KB-027"}),
    ("curl localhost:8000/api says 404 not found but the app is running", {"KB-028"}),
    ("what is max_ongoing_requests for, requests pile up somewhere", {"KB-029"}),
    ("I renamed a field in the serve config and nothing changed, no error at all", {"KB-030"}),
    ("how do deployments talk to each other, passing one into another with .bind()", {"KB-031"}),
    ("504 Gateway Timeout from the serve endpoint under load", {"KB-032"}),
    ("HTTP 503 Service Unavailable right after deploying", {"KB-033"}),
    ("so we shipped the rag service yesterday and since the morning spike users see 'service unavailable' "
     "now and then, pods look fine and nothing restarted, what is going on", {"KB-033", "KB-032"}),
    ("handle.remote() in my notebook raises, the app is not up yet", {"KB-034"}),
    ("OSError: [Errno 98] Address already in use when serve starts", {"KB-035"}),
    ("tweak a threshold on live replicas without redeploying", {"KB-036"}),
    ("replica unhealthy, check_health keeps raising and it gets replaced over and over", {"KB-037"}),
    ("which url should my load balancer poll to know serve is alive", {"KB-038", "KB-058"}),
    ("how to get serve request metrics into prometheus", {"KB-039"}),
    ("one request takes 3 s, which stage of the pipeline is slow", {"KB-040", "KB-054"}),
    ("where can I see why my replicas died yesterday", {"KB-041"}),
    ("dashbord not loading on 8265 conection refused", {"KB-042"}),
    ("target_num_ongoing_requests_per_replica doesnt seem to do anything", {"KB-043", "KB-030"}),
    ("should the target for ongoing requests be high or low, latency versus cost", {"KB-044"}),
    ("replicas go up and down every few seconds, flapping", {"KB-045"}),
    ("serve wants more replicas but no new worker pods ever appear", {"KB-046"}),
    ("the gpu worker stays around for hours after traffic stopped, costing money", {"KB-047"}),
    ("can a deployment go down to zero replicas at night", {"KB-048"}),
    ("nvidia-smi works on the node but torch.cuda.is_available() is False in the replica", {"KB-049"}),
    ("run 4 small models on one graphics card", {"KB-050"}),
    ("replica with num_gpus 2 never starts, the workers have 1 gpu each", {"KB-051"}),
    ("RuntimeError: CUDA error: out of memory. Tried to allocate 2.00 GiB", {"KB-052"}),
    ("group several requests together so the model runs once for many inputs", {"KB-053"}),
    ("pipeline throughput is bad, which stage do i scale", {"KB-054"}),
    ("first request after scaling up is really slow while weights load", {"KB-055"}),
    ("someone posted a 50MB json and the replica choked on it", {"KB-056"}),
    ("I kubectl cp'd my code into the head pod and it was gone after a restart", {"KB-057"}),
    ("docker HEALTHCHECK keeps restarting my model container before it is ready", {"KB-058", "KB-008"}),
    ("how much RAM should each replica declare so ray doesnt overpack the nodes", {"KB-059"}),
    ("should we use triton or kserve or ray serve for our models", {"KB-060"}),
]

# Questions no note answers: a retriever should say it found nothing rather than offer the
# closest unrelated notes.
UNANSWERABLE = [
    "how do I reset my password for the company VPN",
    "what is the best pizza place near the office",
    "how to configure kafka consumer group rebalancing",
    "convert a pandas dataframe to parquet with snappy compression",
    "terraform state lock stuck on the s3 backend",
    "how to center a div in css",
]

# Six more, written after the Reranker's relevance floor was chosen on the sets above, so
# that the abstain rate is also measured on questions the floor was not fitted to.
UNANSWERABLE_LATER = [
    "what is the syntax for a left outer join in postgres",
    "jenkins pipeline fails with permission denied on /var/run/docker.sock",
    "how do I undo my last git commit but keep the changes",
    "my laptop battery drains fast since the last OS update",
    "schedule a cron job every 15 minutes on ubuntu",
    "how many vacation days do new employees get",
]
