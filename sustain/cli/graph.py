"""``sustain graph validate | render | serve | apply``: inference graphs from a small YAML file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sustain.cli.app import app, err, out, path_type

if TYPE_CHECKING:
    from sustain.deploy_pipeline.graph.model import Graph
    from sustain.deploy_pipeline.graph.resolve import ModelResolver

TARGET_CHOICE = click.Choice(["seldon", "seldon-v2", "kserve", "helm"])
tracking_option = click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    default=None,
    help="MLflow registry that resolves models:/ URIs (default $MLFLOW_TRACKING_URI)",
)


@app.group("graph")
def graph_app() -> None:
    """Inference graphs: validate a graph.yaml, render it for Seldon, KServe or Helm, serve it locally, apply it."""


def _resolver(tracking_uri: str | None) -> ModelResolver:
    from sustain.deploy_pipeline.graph.resolve import MlflowResolver, StaticResolver

    return MlflowResolver(tracking_uri) if tracking_uri else StaticResolver()


def _load(file: Path, resolver: ModelResolver | None) -> Graph:
    from sustain.deploy_pipeline.graph.loader import load_graph

    return load_graph(file, resolver=resolver)


def _needs_registry(graph: Graph, tracking_uri: str | None) -> None:
    from sustain.deploy_pipeline.graph.model import GraphError

    uris = [n.impl.uri or "" for n in graph.mlflow_nodes()] + [v.uri for v in (graph.canary, graph.shadow) if v]
    registered = [u for u in uris if u.startswith(("models:/", "runs:/"))]
    if registered and not tracking_uri:
        raise GraphError(
            f"{registered[0]} names a model in an MLflow registry; set MLFLOW_TRACKING_URI (or --tracking-uri) so "
            "its storage location can be resolved"
        )


def _warn(warnings: list[str] | tuple[str, ...]) -> None:
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


@graph_app.command("validate")
@click.argument("file", type=path_type())
@tracking_option
def validate(file: Path, tracking_uri: str | None) -> None:
    """Check FILE: the tree, every node, traffic and monitoring; with a registry, that every model exists."""
    graph = _load(file, _resolver(tracking_uri) if tracking_uri else None)
    from rich.table import Table

    table = Table("node", "kind", "implementation", "children", "sustain model", title=f"graph {graph.name}")
    for node in graph.walk():
        impl = node.impl.uri or node.impl.code or node.impl.image or node.impl.kind
        model = graph.monitored().get(node.name, "(not logged)")
        table.add_row(node.name, node.kind, impl, ", ".join(node.children), model)
    out.print(table)
    for label, variant in (("canary", graph.canary), ("shadow", graph.shadow)):
        if variant is not None:
            share = f" ({variant.percent}%)" if variant.percent else ""
            out.print(f"{label}{share}: node {variant.node} served by {variant.uri}")
    _warn(graph.warnings)
    checked = "; every model is registered" if tracking_uri else ""
    out.print(f"[green]ok[/]: {file} is a valid graph of {len(graph.nodes)} nodes{checked}", highlight=False)


@graph_app.command("render")
@click.argument("file", type=path_type())
@click.option("--target", type=TARGET_CHOICE, required=True, help="what to generate")
@click.option("--out", "out_dir", type=path_type(), required=True, help="directory to write the files into")
@tracking_option
def render(file: Path, target: str, out_dir: Path, tracking_uri: str | None) -> None:
    """Compile FILE for a target and write the manifests (or the Helm chart) into --out."""
    from sustain.deploy_pipeline.graph.render import manifest_files, render_target

    graph = _load(file, None)
    _needs_registry(graph, tracking_uri)
    rendering = render_target(graph, target, _resolver(tracking_uri), source_text=file.read_text(encoding="utf-8"))
    files = manifest_files(rendering)
    for name, text in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _warn(rendering.warnings)
    kinds = ", ".join(f"{m['kind']} {m['metadata']['name']}" for m in rendering.manifests)
    out.print(f"wrote {len(files)} files to {out_dir}: {kinds}", highlight=False, soft_wrap=True)


@graph_app.command("serve")
@click.argument("file", type=path_type())
@click.option("--host", default="127.0.0.1", help="address to listen on")
@click.option("--port", type=int, default=9000, help="port for predictions (Seldon v1 and V2 protocols)")
@click.option("--sustain-url", default=None, help="sustain's base URL for the request logs (default: the graph's)")
@click.option("--seed", type=int, default=None, help="seed for routers and the traffic split (reproducible runs)")
def serve(file: Path, host: str, port: int, sustain_url: str | None, seed: int | None) -> None:
    """Run FILE on this machine: MLflow models in scoring servers, code nodes in-process, Seldon's rules."""
    from sustain.deploy_pipeline.graph.runner import RunnerOptions
    from sustain.deploy_pipeline.graph.runner import serve as run

    graph = _load(file, None)
    sys.path.insert(0, str(file.resolve().parent))  # code nodes import from the graph's folder, like Seldon's wrapper
    _warn(graph.warnings)
    options = RunnerOptions(host=host, port=port, sustain_url=sustain_url, seed=seed)
    err.print(f"starting {len(graph.mlflow_nodes())} scoring server(s) for graph {graph.name}...", highlight=False)
    run(graph, options, progress=lambda line: err.print(line, highlight=False))


@graph_app.command("apply")
@click.argument("file", type=path_type())
@click.option("--target", type=click.Choice(["seldon", "seldon-v2", "kserve"]), default="seldon", help="what to apply")
@click.option("--namespace", default=None, help="namespace for objects that name none (default: the graph's)")
@click.option("--dry-run", is_flag=True, help="only the server-side dry-run")
@tracking_option
def apply(file: Path, target: str, namespace: str | None, dry_run: bool, tracking_uri: str | None) -> None:
    """Render FILE and apply it to the cluster in $KUBECONFIG: a server-side dry-run of everything first."""
    from sustain.deploy_pipeline.graph.apply import apply_manifests, require_kubeconfig
    from sustain.deploy_pipeline.graph.render import render_target

    require_kubeconfig()
    graph = _load(file, None)
    _needs_registry(graph, tracking_uri)
    rendering = render_target(graph, target, _resolver(tracking_uri), source_text=file.read_text(encoding="utf-8"))
    _warn(rendering.warnings)
    applied = apply_manifests(
        rendering.manifests,
        namespace=namespace or graph.namespace,
        dry_run_only=dry_run,
        progress=lambda line: err.print(line, highlight=False),
    )
    verb = "passed the dry-run" if dry_run else "applied"
    count = len(rendering.manifests) if dry_run else len(applied)
    out.print(f"{count} objects {verb}", highlight=False)
