"""Read ``graph.yaml`` into a :class:`~sustain.deploy_pipeline.graph.model.Graph`, naming the line of every problem.

The file is as small as the graph::

    name: churn
    nodes:
      prep:  {transformer: {code: my_pkg.prep:Prep}}       # or image: acme/prep:1
      score: {model: models:/churn@champion}
    edges: [prep -> score]
    traffic: {canary: {model: models:/churn@challenger, percent: 10}, shadow: models:/churn/5}
    monitor: {model: churn}                                 # where the request logs go in sustain

Every problem is collected (not only the first) and reported as ``graph.yaml:LINE: path: reason``, the way
sustain's monitor-spec loader reports spec problems.

>>> text = "name: g\\nnodes:\\n  a: {model: models:/m/1}\\n  b: {model: models:/m/2}\\nedges: [a -> b, b -> a]\\n"
>>> try:
...     load_graph_text(text, source="graph.yaml")
... except GraphError as exc:
...     print(exc.details[0]["where"], exc.details[0]["message"])
graph.yaml:5 edge b -> a closes a cycle: a -> b -> a
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from sustain.deploy_pipeline.graph.model import (
    CODE_REF,
    DEFAULT_SUSTAIN_URL,
    DNS_LABEL,
    NODE_KINDS,
    PROTOCOLS,
    SUSTAIN_MODEL,
    Graph,
    GraphError,
    Impl,
    Monitor,
    Node,
    NodeKind,
    Protocol,
    Variant,
    default_monitor_models,
)
from sustain.deploy_pipeline.graph.uris import check_model_uri

if TYPE_CHECKING:
    from sustain.deploy_pipeline.graph.resolve import ModelResolver

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it
TOP_KEYS = ("name", "protocol", "namespace", "code", "nodes", "edges", "traffic", "monitor", "description")
NODE_OPTIONS = ("output",)
ROUTER_OPTIONS: dict[str, dict[str, type]] = {"ab": {"ratio": float}, "epsilon_greedy": {"epsilon": float, "seed": int}}
COMBINER_OPTIONS: dict[str, dict[str, type]] = {"average": {}}
Path_ = tuple[str | int, ...]


@dataclass
class Problem:
    path: str
    line: int | None
    message: str


class _Lines:
    """Line numbers of a composed YAML document, looked up by path (mapping keys and list indexes)."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def _walk(self, path: Path_) -> tuple[yaml.Node | None, yaml.Node | None]:
        node, key_node = self.root, None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                found = next(
                    ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None
                )
                if found is None:
                    break
                key_node, node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                key_node, node = None, node.value[part]
            else:
                break
        return node, key_node

    def at(self, *path: str | int) -> int | None:
        """The line of the value at ``path`` (or of its nearest ancestor)."""
        node, key_node = self._walk(path)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and key_node is not None and path:
            node = key_node  # a block mapping starts on the next line; its key's line reads better
        return None if node is None else node.start_mark.line + 1


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


class _Reader:
    def __init__(self, data: dict[str, Any], lines: _Lines, source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(_dotted(path), self.lines.at(*path), message))

    def warn(self, path: Path_, message: str) -> None:
        line = self.lines.at(*path)
        self.warnings.append(f"{self.source}:{line}: {message}" if line else f"{self.source}: {message}")

    # -- scalars -----------------------------------------------------------------------------------
    def text(self, path: Path_, value: Any, what: str) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"{what} must be a non-empty string, got {value!r}")
            return None
        return value.strip()

    def label(self, path: Path_, value: Any, what: str) -> str | None:
        text = self.text(path, value, what)
        if text is not None and not DNS_LABEL.match(text):
            self.problem(path, f"{what} {text!r} must be a DNS label: lowercase letters, digits and '-', at most 63")
            return None
        return text

    def code_ref(self, path: Path_, value: Any) -> str | None:
        text = self.text(path, value, "code")
        if text is not None and not CODE_REF.match(text):
            self.problem(path, f"code {text!r} must name a class as package.module:Class")
            return None
        return text

    def model_uri(self, path: Path_, value: Any) -> str | None:
        text = self.text(path, value, "a model URI")
        if text is None:
            return None
        reason = check_model_uri(text)
        if reason:
            self.problem(path, reason)
            return None
        return text

    # -- nodes -------------------------------------------------------------------------------------
    def code_impl(self, path: Path_, body: Any, kind: str) -> Impl | None:
        if isinstance(body, str):
            code = self.code_ref(path, body)
            return None if code is None else Impl(kind="code", code=code)
        if not isinstance(body, dict):
            self.problem(path, f"a {kind} needs {{code: package.module:Class}} and/or {{image: registry/image:tag}}")
            return None
        unknown = sorted(set(body) - {"code", "image"})
        if unknown:
            self.problem((*path, unknown[0]), f"unknown option {unknown[0]!r} of a {kind}; it takes code and image")
            return None
        if "code" not in body and "image" not in body:
            self.problem(path, f"a {kind} needs code (package.module:Class) or image (registry/image:tag)")
            return None
        code = self.code_ref((*path, "code"), body["code"]) if "code" in body else None
        image = self.text((*path, "image"), body["image"], "image") if "image" in body else None
        if ("code" in body and code is None) or ("image" in body and image is None):
            return None
        return Impl(kind="code", code=code, image=image)

    def model_impl(self, path: Path_, body: Any) -> Impl | None:
        if isinstance(body, str):
            uri = self.model_uri(path, body)
            return None if uri is None else Impl(kind="mlflow", uri=uri)
        if isinstance(body, dict) and "uri" in body:
            if set(body) != {"uri"}:
                self.problem(path, "a model is either {uri: ...} or {code: ..., image: ...}, not both")
                return None
            uri = self.model_uri((*path, "uri"), body["uri"])
            return None if uri is None else Impl(kind="mlflow", uri=uri)
        return self.code_impl(path, body, "model")

    def builtin(self, path: Path_, body: Any, choices: Mapping[str, Mapping[str, type]], kind: str) -> Impl | None:
        """A built-in written as its name (``ab``) or ``{ab: {ratio: 0.3}}``; anything else is code."""
        name: Any
        options: Any
        name, options = (body, {}) if isinstance(body, str) else (None, None)
        if isinstance(body, dict) and len(body) == 1 and next(iter(body)) in choices:
            name, options = next(iter(body.items()))
            options = options or {}
        if name is None:
            return self.code_impl(path, body, kind)
        if name not in choices:
            known = ", ".join(sorted(choices))
            self.problem(path, f"unknown {kind} {name!r}; built-ins: {known}, or {{code: package.module:Class}}")
            return None
        if not isinstance(options, dict):
            self.problem((*path, name), f"options of {name} must be a mapping, got {options!r}")
            return None
        params: list[tuple[str, float | int | str]] = []
        for key, value in options.items():
            expected = choices[name].get(key)
            if expected is None:
                allowed = ", ".join(choices[name]) or "none"
                self.problem((*path, name, key), f"unknown option {key!r} of {name}; options: {allowed}")
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.problem((*path, name, key), f"{name}.{key} must be a number, got {value!r}")
                return None
            params.append((key, expected(value)))
        return Impl(kind=cast(Any, name), params=tuple(params))

    def node(self, name: str, body: Any) -> Node | None:
        path: Path_ = ("nodes", name)
        if not isinstance(body, dict):
            self.problem(path, f"node {name} must be a mapping with one of: {', '.join(NODE_KINDS)}")
            return None
        kinds = [k for k in body if k in NODE_KINDS]
        unknown = [k for k in body if k not in NODE_KINDS and k not in NODE_OPTIONS]
        if unknown:
            self.problem(
                (*path, unknown[0]), f"unknown key {unknown[0]!r} in node {name}; kinds: {', '.join(NODE_KINDS)}"
            )
            return None
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            self.problem(path, f"node {name} needs exactly one kind of {', '.join(NODE_KINDS)} (found {found})")
            return None
        kind = cast(NodeKind, kinds[0])
        kpath = (*path, kind)
        impl: Impl | None
        if kind == "model":
            impl = self.model_impl(kpath, body[kind])
        elif kind == "router":
            impl = self.builtin(kpath, body[kind], ROUTER_OPTIONS, "router")
        elif kind == "combiner":
            impl = self.builtin(kpath, body[kind], COMBINER_OPTIONS, "combiner")
        else:
            impl = self.code_impl(kpath, body[kind], kind.replace("_", " "))
        output = body.get("output")
        if output is not None and output != "first_child":
            self.problem(
                (*path, "output"), f"output must be first_child (Seldon's rule for several children), got {output!r}"
            )
        if impl is None:
            return None
        if impl.kind == "ab":
            ratio = float(impl.param("ratio", 0.5))
            if not 0.0 <= ratio <= 1.0:
                self.problem((*path, kind), f"ab ratio is the share of the first child, between 0 and 1; got {ratio}")
        if impl.kind == "epsilon_greedy" and not 0.0 <= float(impl.param("epsilon", 0.1)) <= 1.0:
            self.problem((*path, kind), "epsilon_greedy epsilon must be between 0 and 1")
        return Node(
            name=name, kind=kind, impl=impl, line=self.lines.at(*path), first_child_output=output == "first_child"
        )

    # -- edges and the tree ---------------------------------------------------------------------------
    def edges(self, nodes: Collection[str]) -> list[tuple[str, str, int]]:
        raw = self.data.get("edges", [])
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            self.problem(("edges",), "edges must be a list like [prep -> score]")
            return []
        out: list[tuple[str, str, int]] = []
        for i, item in enumerate(raw):
            if not isinstance(item, str) or "->" not in item:
                self.problem(("edges", i), f"edge {item!r} must read 'parent -> child' (or a chain a -> b -> c)")
                continue
            names = [part.strip() for part in item.split("->")]
            for a, b in itertools.pairwise(names):
                bad = next((n for n in (a, b) if n not in nodes), None)
                if bad is not None:
                    known = ", ".join(nodes) or "none"
                    self.problem(("edges", i), f"edge {a} -> {b} names an unknown node {bad!r} (nodes: {known})")
                elif a == b:
                    self.problem(("edges", i), f"edge {a} -> {b} points a node at itself")
                else:
                    out.append((a, b, i))
        return out

    def tree(self, nodes: dict[str, Node], edges: list[tuple[str, str, int]]) -> tuple[dict[str, Node], str] | None:
        children: dict[str, list[str]] = {n: [] for n in nodes}
        parent: dict[str, tuple[str, int]] = {}
        ok = True
        for a, b, i in edges:
            if b in children[a]:
                self.problem(("edges", i), f"edge {a} -> {b} is written twice")
                ok = False
                continue
            cycle = _path_up(parent, a, b)
            if cycle is not None:
                self.problem(("edges", i), f"edge {a} -> {b} closes a cycle: {' -> '.join([*cycle, b])}")
                ok = False
                continue
            if b in parent:
                first, j = parent[b]
                self.problem(
                    ("edges", i),
                    f"node {b} would have two parents, {first} (line {self.lines.at('edges', j)}) and {a}; "
                    "an inference graph is a tree (Seldon's executor calls each node from one parent)",
                )
                ok = False
                continue
            parent[b] = (a, i)
            children[a].append(b)
        if not ok:
            return None
        roots = [n for n in nodes if n not in parent]
        if len(roots) != 1:
            self.problem(
                ("nodes", roots[1]) if len(roots) > 1 else ("edges",),
                f"the graph has {len(roots)} roots ({', '.join(roots)}); connect them so one node receives the request",
            )
            return None
        built = {name: replace(node, children=tuple(children[name])) for name, node in nodes.items()}
        for node in built.values():
            self.check_children(node)
        return built, roots[0]

    def check_children(self, node: Node) -> None:
        path: Path_ = ("nodes", node.name)
        n = len(node.children)
        if node.kind == "combiner" and n == 0:
            self.problem(path, f"combiner {node.name} has no children to combine; add edges {node.name} -> ...")
        if node.kind == "router" and n < 2:
            self.problem(path, f"router {node.name} needs at least two children to choose from, has {n}")
        if node.impl.kind == "ab" and n != 2:
            self.problem(path, f"ab router {node.name} routes between exactly two children, has {n}")
        several = n > 1 and node.kind not in ("router", "combiner")
        if several and not node.first_child_output:
            self.problem(
                path,
                f"node {node.name} has {n} children ({', '.join(node.children)}) and no combiner: Seldon's executor "
                "calls them all and returns only the first child's output; put a combiner under it, or write "
                "'output: first_child' on the node to accept that",
            )
        elif several:
            self.warn(
                path,
                f"node {node.name} has {n} children and no combiner: only {node.children[0]}'s output is returned; "
                f"{', '.join(node.children[1:])} run for their side effects",
            )
        elif node.first_child_output:
            self.problem((*path, "output"), "output: first_child applies to a node with several children")

    # -- traffic and monitoring ----------------------------------------------------------------------
    def variant(self, key: str, body: Any, nodes: dict[str, Node]) -> Variant | None:
        path: Path_ = ("traffic", key)
        if isinstance(body, str):
            body = {"model": body}
        if not isinstance(body, dict):
            self.problem(path, f"traffic.{key} must be a model URI or {{model: URI, node: NAME}}")
            return None
        allowed = {"model", "node", "percent"} if key == "canary" else {"model", "node"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            self.problem(
                (*path, unknown[0]), f"unknown option {unknown[0]!r} of traffic.{key}: {', '.join(sorted(allowed))}"
            )
            return None
        uri = self.model_uri((*path, "model"), body.get("model"))
        mlflow = [n.name for n in nodes.values() if n.impl.kind == "mlflow"]
        node = body.get("node")
        if node is None:
            if len(mlflow) != 1:
                choice = ", ".join(mlflow) or "none"
                self.problem(path, f"traffic.{key} must name the node it replaces (MLflow model nodes: {choice})")
                return None
            node = mlflow[0]
        elif node not in mlflow:
            self.problem(
                (*path, "node"), f"traffic.{key}.node {node!r} is not an MLflow model node ({', '.join(mlflow)})"
            )
            return None
        percent = body.get("percent")
        if key == "canary" and (isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99):
            self.problem(
                (*path, "percent"), f"traffic.canary.percent must be a whole number from 1 to 99, got {percent!r}"
            )
            return None
        if uri is None:
            return None
        return Variant(node=str(node), uri=uri, percent=percent, line=self.lines.at(*path))

    def monitor(self, name: str, nodes: dict[str, Node]) -> Monitor:
        body = self.data.get("monitor") or {}
        if not isinstance(body, dict):
            self.problem(("monitor",), "monitor must be a mapping: {model: NAME, url: URL, nodes: {...}}")
            return Monitor()
        unknown = sorted(set(body) - {"model", "url", "nodes"})
        if unknown:
            self.problem(("monitor", unknown[0]), f"unknown key {unknown[0]!r} in monitor: model, url, nodes")
        model = body.get("model", name)
        if not isinstance(model, str) or not SUSTAIN_MODEL.match(model):
            self.problem(
                ("monitor", "model"), f"monitor.model {model!r} is not a sustain model name (lowercase, digits, _ -)"
            )
            model = name
        url = body.get("url", DEFAULT_SUSTAIN_URL)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            self.problem(("monitor", "url"), f"monitor.url must be sustain's http(s) base URL, got {url!r}")
            url = DEFAULT_SUSTAIN_URL
        models = default_monitor_models(nodes, model)
        explicit = body.get("nodes")
        if isinstance(explicit, list):
            unknown_nodes = [n for n in explicit if n not in nodes]
            if unknown_nodes:
                self.problem(("monitor", "nodes"), f"monitor.nodes names unknown node {unknown_nodes[0]!r}")
            models = {n: m for n, m in models.items() if n in explicit}
        elif isinstance(explicit, dict):
            for node, target in explicit.items():
                if node not in nodes:
                    self.problem(("monitor", "nodes", node), f"monitor.nodes names unknown node {node!r}")
                elif target is None:
                    models.pop(node, None)
                elif not isinstance(target, str) or not SUSTAIN_MODEL.match(target):
                    self.problem(("monitor", "nodes", node), f"{target!r} is not a sustain model name")
                else:
                    models[node] = target
        elif explicit is not None:
            self.problem(("monitor", "nodes"), "monitor.nodes is a list of nodes or a mapping node -> sustain model")
        return Monitor(url=url.rstrip("/"), models=models)


def _path_up(parent: dict[str, tuple[str, int]], start: str, target: str) -> list[str] | None:
    """The chain target -> ... -> start if ``target`` is an ancestor of (or is) ``start``."""
    chain = [start]
    node = start
    while node != target:
        if node not in parent:
            return None
        node = parent[node][0]
        chain.append(node)
    return list(reversed(chain))


def _fail(problems: list[Problem], source: str) -> GraphError:
    details = [
        {
            "where": f"{source}:{p.line}" if p.line else source,
            "line": p.line,
            "path": p.path,
            "message": p.message,
        }
        for p in problems
    ]
    summary = "; ".join(f"{d['where']}: {d['message']}" for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return GraphError(f"invalid graph: {summary}{more}", details=details)


def load_graph_text(text: str, *, source: str = "<graph>", resolver: ModelResolver | None = None) -> Graph:
    """Validate a graph document; with a ``resolver``, every MLflow model URI must also exist."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail([Problem("", line, f"not valid YAML: {problem}")], source) from None
    if not isinstance(data, dict):
        raise _fail([Problem("", 1, "a graph file is a mapping with name, nodes and edges")], source)
    r = _Reader(data, _Lines(root), source)
    for key in data:
        if key not in TOP_KEYS:
            r.problem((key,), f"unknown key {key!r}; a graph has: {', '.join(TOP_KEYS)}")
    name = r.label(("name",), data.get("name"), "name")
    protocol = data.get("protocol", "seldon")
    if protocol not in PROTOCOLS:
        r.problem(("protocol",), f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    namespace = r.label(("namespace",), data["namespace"], "namespace") if "namespace" in data else None
    code = data.get("code") or {}
    if not isinstance(code, dict) or set(code) - {"image", "uri"}:
        r.problem(("code",), "code takes image (for Seldon v1 and KServe) and uri (for Seldon Core v2)")
        code = {}
    code_image = r.text(("code", "image"), code["image"], "code.image") if "image" in code else None
    code_uri = r.text(("code", "uri"), code["uri"], "code.uri") if "uri" in code else None
    raw_nodes = data.get("nodes")
    nodes: dict[str, Node] = {}
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        r.problem(("nodes",), "nodes must map at least one node name to its kind, e.g. score: {model: models:/churn/1}")
    else:
        for node_name, body in raw_nodes.items():
            if r.label(("nodes", str(node_name)), str(node_name), "node name") is None:
                continue
            node = r.node(str(node_name), body)
            if node is not None:
                nodes[node.name] = node
    tree = None
    if isinstance(raw_nodes, dict):
        edges = r.edges([str(n) for n in raw_nodes])  # edges are checked even when a node itself is wrong
        if not r.problems:
            tree = r.tree(nodes, edges)
    traffic = data.get("traffic") or {}
    canary = shadow = None
    if not isinstance(traffic, dict) or set(traffic) - {"canary", "shadow"}:
        r.problem(("traffic",), "traffic takes canary ({model: URI, percent: N}) and shadow (a model URI)")
    elif tree is not None:
        canary = r.variant("canary", traffic["canary"], tree[0]) if "canary" in traffic else None
        shadow = r.variant("shadow", traffic["shadow"], tree[0]) if "shadow" in traffic else None
    monitor = r.monitor(name or "graph", tree[0] if tree else nodes)
    if resolver is not None and not r.problems and tree is not None:
        _check_registered(r, tree[0], canary, shadow, resolver)
    if r.problems or tree is None or name is None:
        raise _fail(r.problems or [Problem("", None, "the graph is incomplete")], source)
    return Graph(
        name=name,
        nodes=tree[0],
        root=tree[1],
        protocol=cast(Protocol, protocol),
        namespace=namespace,
        code_image=code_image,
        code_uri=code_uri,
        canary=canary,
        shadow=shadow,
        monitor=monitor,
        source=source,
        warnings=tuple(r.warnings),
    )


def _check_registered(
    r: _Reader, nodes: dict[str, Node], canary: Variant | None, shadow: Variant | None, resolver: ModelResolver
) -> None:
    from sustain.errors import SustainError

    uses: list[tuple[Path_, str]] = []
    for node in nodes.values():
        if node.impl.kind == "mlflow" and node.impl.uri:
            path: Path_ = ("nodes", node.name, "model")
            uses.append(((*path, "uri") if r.lines.at(*path, "uri") != r.lines.at(*path) else path, node.impl.uri))
    for key, variant in (("canary", canary), ("shadow", shadow)):
        if variant is not None:
            uses.append((("traffic", key), variant.uri))
    for path, uri in uses:
        try:
            resolver.resolve(uri)
        except SustainError as exc:
            r.problem(path, exc.message)


def load_graph(path: str | Path, *, resolver: ModelResolver | None = None) -> Graph:
    """Read and validate a graph file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphError(f"{p}: cannot read the file: {exc}") from exc
    return load_graph_text(text, source=str(p), resolver=resolver)
