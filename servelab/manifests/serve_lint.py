"""Checks for a Serve config (a RayService's serveConfigV2).

Ray validates a config with its pydantic ServeDeploySchema but ignores keys it
does not know, by design, so a removed field name deploys with HTTP 200 and
the default silently applies. The strict pass here walks the config against
the field names of Ray's own models (so it follows the installed Ray) and
reports every key Ray would ignore, with the current name where one exists.
"""

from __future__ import annotations

import difflib
import re

import yaml

from servelab.manifests._findings import Finding

# Field names the seed texts (Ray 2.9) use that Ray 2.33+ silently ignores.
RENAMED = {
    "max_concurrent_queries": "max_ongoing_requests",
    "target_num_ongoing_requests_per_replica": "target_ongoing_requests",
}
# An import_path as Ray reads it (import_module_and_attr in ray/_common/utils.py, Ray 2.60):
# "module.path:attr" splits at the colon, "module.path.attr" at the last dot, and the module
# part goes to importlib.import_module. That finds each dotted part as a file or folder name
# on sys.path (the working_dir is on it), so a part may hold a hyphen: KubeRay's own sample
# "ray-operator.config.samples.vllm.serve_tpu:model" imports fine. A "/" never can: a file
# path is not an import path. The attribute is a name in the module, so an identifier.
IMPORT_PATH = re.compile(r"^[\w-]+(\.[\w-]+)*[:.][A-Za-z_]\w*$")


def import_module_name(import_path: str) -> str:
    """The module Ray imports for an import_path ("a.b:app" and "a.b.app" both give "a.b")."""
    if ":" in import_path:
        return import_path.split(":", 1)[0]
    return import_path.rpartition(".")[0]


def _models():
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    return {
        "config": ServeDeploySchema, "application": ServeApplicationSchema,
        "deployment": DeploymentSchema, "autoscaling_config": AutoscalingConfig,
        "ray_actor_options": RayActorOptionsSchema, "http_options": HTTPOptionsSchema,
    }


def _path(base: str, loc) -> str:
    out = base
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse(text, path: str) -> tuple[dict | None, list[Finding]]:
    if not isinstance(text, str):
        return None, [Finding("error", path, "serveConfigV2 must be a YAML string",
                              "write it as a block scalar: `serveConfigV2: |` followed by the config")]
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1} of the config)" if mark else ""
        return None, [Finding("error", path, f"not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                              "fix the indentation or quoting inside the block")]
    if not isinstance(config, dict):
        return None, [Finding("error", path, "the config is not a mapping",
                              "start it with `applications:`")]
    return config, []


def check(text, path: str = "spec.serveConfigV2", strict: bool = True) -> tuple[dict | None, list[Finding]]:
    """All findings for one serveConfigV2, and the parsed config (None if unreadable).
    strict=False reads it as Ray does: keys Ray ignores are not reported."""
    config, findings = parse(text, path)
    if config is None:
        return None, findings
    schema = _schema(config, path)
    ours = (_strict(config, path) if strict else []) + _semantics(config, path)
    # Where our finding says the same thing more precisely, Ray's message is noise.
    schema = [f for f in schema if not any(o.path == f.path or o.path.startswith(f.path + ".")
                                           or o.path.startswith(f.path + "[") for o in ours)]
    return config, _dedupe(findings + schema + ours)


def _at(config, loc):
    node = config
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _schema(config: dict, path: str) -> list[Finding]:
    import pydantic

    try:
        _models()["config"].model_validate(config)
    except pydantic.ValidationError as exc:
        out = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            node = _at(config, loc)
            # Model-level validators point at the object; name the field they complain about.
            if isinstance(node, dict):
                named = [k for k in node if re.search(rf"[`'\"]{re.escape(str(k))}[`'\"]", e["msg"])]
                if len(named) == 1:
                    loc += (named[0],)
            out.append(Finding("error", _path(path, loc), f"Ray rejects this: {e['msg']}",
                               "see Ray Serve's config reference for this field"))
        return out
    return []


def _unknown(mapping: dict, model, path: str) -> list[Finding]:
    known = set(model.model_fields)
    out = []
    for key in mapping:
        if key in known:
            continue
        if key in RENAMED:
            out.append(Finding("error", f"{path}.{key}",
                               f"'{key}' was removed in Ray 2.33; Ray 2.60 silently ignores it and uses the default",
                               f"rename it to '{RENAMED[key]}'"))
        else:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "remove it"
            out.append(Finding("error", f"{path}.{key}", f"unknown key '{key}': Ray ignores it", hint))
    return out


def _strict(config: dict, path: str) -> list[Finding]:
    models = _models()
    out = _unknown(config, models["config"], path)
    if isinstance(config.get("http_options"), dict):
        out += _unknown(config["http_options"], models["http_options"], f"{path}.http_options")
    for i, app in enumerate(config.get("applications") or []):
        if not isinstance(app, dict):
            continue
        app_path = f"{path}.applications[{i}]"
        out += _unknown(app, models["application"], app_path)
        for j, dep in enumerate(app.get("deployments") or []):
            if not isinstance(dep, dict):
                continue
            dep_path = f"{app_path}.deployments[{j}]"
            out += _unknown(dep, models["deployment"], dep_path)
            for key in ("autoscaling_config", "ray_actor_options"):
                if isinstance(dep.get(key), dict):
                    out += _unknown(dep[key], models[key], f"{dep_path}.{key}")
    return out


def _semantics(config: dict, path: str) -> list[Finding]:
    out = []
    seen_names: dict[str, int] = {}
    seen_routes: dict[str, int] = {}
    for i, app in enumerate(config.get("applications") or []):
        if not isinstance(app, dict):
            continue
        app_path = f"{path}.applications[{i}]"
        name, route = app.get("name"), app.get("route_prefix")
        if name in seen_names:
            out.append(Finding("error", f"{app_path}.name", f"application name '{name}' is used twice "
                               f"(also applications[{seen_names[name]}])", "give every application its own name"))
        seen_names.setdefault(name, i)
        if route is not None and route in seen_routes:
            out.append(Finding("error", f"{app_path}.route_prefix", f"route prefix '{route}' is used twice "
                               f"(also applications[{seen_routes[route]}])", "give every application its own route_prefix"))
        if route is not None:
            seen_routes.setdefault(route, i)
        out += _import_path(app.get("import_path"), f"{app_path}.import_path")
        for j, dep in enumerate(app.get("deployments") or []):
            if isinstance(dep, dict):
                out += _autoscaling(dep, f"{app_path}.deployments[{j}]")
    return out


def _import_path(imp, path: str) -> list[Finding]:
    if not isinstance(imp, str):
        return []  # the schema pass reports a missing or non-string import_path
    fix = "write it as package.module:app (a Python module path, not a file path)"
    if not IMPORT_PATH.match(imp):
        return [Finding("error", path, f"'{imp}' is not an import path: Ray reads module.path:attr or "
                        "module.path.attr, with dotted module names and no '/'", fix)]
    if ":" not in imp and imp.endswith(".py"):
        return [Finding("error", path, f"'{imp}' is a file name: Ray would import module "
                        f"'{import_module_name(imp)}' and look for an attribute 'py' in it", fix)]
    return []


def _autoscaling(dep: dict, path: str) -> list[Finding]:
    auto = dep.get("autoscaling_config")
    out = []
    if isinstance(auto, dict) and dep.get("num_replicas") not in (None, "auto"):
        out.append(Finding("error", f"{path}.num_replicas",
                           "num_replicas and autoscaling_config together: Ray rejects the deployment",
                           "remove num_replicas (or set it to \"auto\") and give min/initial/max in autoscaling_config"))
    if isinstance(auto, dict):
        low, high = auto.get("min_replicas", 1), auto.get("max_replicas", 1)
        start = auto.get("initial_replicas")
        numbers = all(isinstance(v, (int, float)) for v in (low, high) + ((start,) if start is not None else ()))
        if numbers and not (low <= (start if start is not None else low) <= high and low <= high):
            out.append(Finding("error", f"{path}.autoscaling_config",
                               f"bounds out of order: min_replicas {low}, initial_replicas {start}, max_replicas {high}",
                               "keep min_replicas <= initial_replicas <= max_replicas (max_replicas defaults to 1)"))
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        if (f.severity, f.path, f.message) not in seen:
            seen.add((f.severity, f.path, f.message))
            out.append(f)
    return out


def deployments(config: dict):
    """(application index, deployment index, deployment dict) for every listed deployment."""
    for i, app in enumerate(config.get("applications") or []):
        if isinstance(app, dict):
            for j, dep in enumerate(app.get("deployments") or []):
                if isinstance(dep, dict):
                    yield i, j, dep
