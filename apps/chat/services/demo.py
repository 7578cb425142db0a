"""Demo knowledge base: the ABCD policies (../shared/datasets/abcd_kb_only) as articles.

``guidelines.json`` holds, per flow (Product Defect, Order Issue, ...) and subflow (Initiate
Refund, Return Due to Size, ...), the agent's actions with their texts and the instructions;
``kb.json`` the required action sequence per subflow key (``return_size``); ``ontology.json``
the keys of flows and subflows in the guidelines' order. One article per subflow: title
"Flow: Subflow", body in Markdown (the flow's description, the instructions, each step with
its details, the required actions), tags = the flow key, external id ``abcd:<flow>:<subflow>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.chat.services.articles import article_upsert
from apps.chat.services.background import index_updates_batched

FILES = ("guidelines.json", "kb.json", "ontology.json")


@dataclass(frozen=True)
class DemoArticle:
    external_id: str
    flow: str  # product_defect
    subflow: str  # return_size
    title: str
    body: str


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _tidy(text: str) -> str:
    """One line of guideline text: spaces collapsed, the UI's [Button] names in bold."""
    text = " ".join(str(text).split())
    return re.sub(r"\[([^\]]+)\]", r"**\1**", text)


def _body(flow_name: str, flow: dict[str, Any], subflow_name: str, data: dict[str, Any], required: list[str]) -> str:
    lines = [f"*{flow_name}* — {flow.get('description', '').strip()}.", ""]
    instructions = [_tidy(t) for t in data.get("instructions", []) if str(t).strip()]
    if instructions:
        lines += ["## Overview", "", *instructions, ""]
    lines += ["## Steps", ""]
    for number, action in enumerate(data.get("actions", []), start=1):
        button = action.get("button", "")
        text = _tidy(action.get("text", ""))
        shown = button and button != "N/A" and f"**{button}**" not in text
        lines.append(f"{number}. {text} (**{button}**)" if shown else f"{number}. {text}")
        lines += [f"    - {_tidy(sub)}" for sub in action.get("subtext", []) if str(sub).strip()]
    if required:
        lines += ["", "## Required actions", "", ", ".join(required) + "."]
    return "\n".join(lines).strip() + "\n"


def demo_articles(folder: Path) -> list[DemoArticle]:
    """The articles of the data set in ``folder`` (raises ``FileNotFoundError``/``ValueError``)."""
    guidelines = json.loads((folder / "guidelines.json").read_text(encoding="utf-8"))
    required = json.loads((folder / "kb.json").read_text(encoding="utf-8"))
    ontology = json.loads((folder / "ontology.json").read_text(encoding="utf-8"))["intents"]["subflows"]
    articles = []
    for flow_name, flow in guidelines.items():
        flow_key = _key(flow_name)
        keys = ontology.get(flow_key, [])
        names = list(flow.get("subflows", {}))
        if len(keys) != len(names):
            raise ValueError(f"{flow_name}: {len(names)} subflows in guidelines.json, {len(keys)} in ontology.json")
        for subflow_key, subflow_name in zip(keys, names, strict=True):
            data = flow["subflows"][subflow_name]
            articles.append(
                DemoArticle(
                    external_id=f"abcd:{flow_key}:{subflow_key}",
                    flow=flow_key,
                    subflow=subflow_key,
                    title=f"{flow_name}: {subflow_name}",
                    body=_body(flow_name, flow, subflow_name, data, required.get(subflow_key, [])),
                )
            )
    return articles


def demo_load(folder: Path, *, queue_index: bool = True) -> dict[str, int]:
    """Imports (idempotent, by external id) and publishes the demo articles; the index task is
    queued unless ``queue_index`` is False (the caller builds the index itself)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with index_updates_batched(send=queue_index):
        for article in demo_articles(folder):
            _, outcome = article_upsert(
                values={"title": article.title, "body": article.body, "tags": [article.flow], "published": True},
                external_id=article.external_id,
                user=None,
                source_format="demo",
                source_filename="guidelines.json",
            )
            counts[outcome] += 1
    return counts
