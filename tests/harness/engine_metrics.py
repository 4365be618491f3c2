"""Which vLLM metrics the llm:* recording and alert rules use, and whether a /metrics page has them.

Shared by the unit test (a recorded-format page) and the serving scenario (the real vLLM).
"""

from __future__ import annotations

import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "roles" / "prometheus" / "templates" / "rules"

# A selector in a PromQL expression: a metric name, then optionally {labels}.
SELECTOR = re.compile(r"(?<![\w:$.])(vllm:[a-zA-Z0-9_:]+|http_requests_total)\b")
HISTOGRAM_SUFFIX = "_bucket"


def metrics_used_by_rules() -> set[str]:
    text = "\n".join(path.read_text() for path in RULES.glob("*.j2"))
    exprs = "\n".join(
        line
        for line in text.splitlines()
        if not line.lstrip().startswith(("#", "summary", "- record"))
    )
    return set(SELECTOR.findall(exprs))


def parse_exposition(text: str) -> tuple[dict[str, str], set[str]]:
    """Return the declared families and their types, and the names of all samples."""
    types: dict[str, str] = {}
    samples: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _unused, _unused, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return types, samples


def missing_metrics(text: str) -> list[str]:
    types, samples = parse_exposition(text)
    problems = []
    for name in sorted(metrics_used_by_rules()):
        if name.endswith(HISTOGRAM_SUFFIX):
            family = name[: -len(HISTOGRAM_SUFFIX)]
            if types.get(family) != "histogram":
                problems.append(f"{family}: not a histogram ({types.get(family)})")
            elif name not in samples:
                problems.append(f"{name}: no bucket samples")
        elif name.endswith("_total"):
            if types.get(name, types.get(name[: -len("_total")])) != "counter":
                problems.append(f"{name}: not a counter")
            elif name not in samples:
                problems.append(f"{name}: no samples")
        elif name not in samples or types.get(name) != "gauge":
            problems.append(f"{name}: not a gauge with samples")
    return problems
