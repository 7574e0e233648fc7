"""Load a pipeline file: YAML -> overrides -> validated config, with errors that point at lines."""

from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dlcli.config.overrides import (
    Override,
    RecursiveAlias,
    apply_overrides,
    find_recursive_alias,
    parse_override,
)
from dlcli.config.schema import modality_mismatch, pipeline_model, unreported_monitor
from dlcli.errors import ConfigError
from dlcli.registry import did_you_mean

Loc = tuple[str, ...]


@dataclass
class LoadedPipeline:
    config: Any  # an instance of pipeline_model()
    path: Path | None
    raw: dict[str, Any] = field(default_factory=dict)


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> LoadedPipeline:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"Pipeline file not found: {path}",
            hint="give the path of a pipeline YAML file, or create one with `dlcli init`",
        )
    text = path.read_text(encoding="utf-8")
    return load_pipeline_text(text, source=path, overrides=overrides)


def load_pipeline_text(
    text: str, *, source: Path | None = None, overrides: list[str] | None = None
) -> LoadedPipeline:
    name = str(source) if source else "<pipeline>"
    try:
        recursive = find_recursive_alias(text)
        if recursive is not None:
            raise _recursive_alias_error(recursive, name, text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = _construct(_interpolate_env(node, name, text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: a pipeline is a mapping of sections (name, data, model, ...)")
    parsed = [parse_override(o) for o in overrides or []]
    apply_overrides(data, parsed)
    if isinstance(data.get("task"), dict):
        data["task"].setdefault("type", "classification")  # the default task needs no type
    _move_classification_options(data, name)
    base_dir = source.parent.resolve() if source else Path.cwd()
    model = pipeline_model()
    try:
        config = model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = _line_index(node)
        messages = [_describe(err, name, lines, parsed, text, model) for err in exc.errors()]
        if len(messages) > 1:
            messages.insert(0, f"{len(messages)} problems in {name}:")
        raise ConfigError("\n".join(messages)) from None
    mismatch = modality_mismatch(config)
    if mismatch is not None:
        where, snippet = _where(("model", "type"), name, _line_index(node), parsed, text)
        raise ConfigError(
            f"{where}: {mismatch}" + snippet,
            hint="`dlcli list models` shows which data each model reads",
        )
    problem = unreported_monitor(config)
    if problem is not None:
        message, hint = problem
        loc = ("train", "early_stopping", "monitor")
        where, snippet = _where(loc, name, _line_index(node), parsed, text)
        raise ConfigError(f"{where}: {message}" + snippet, hint=hint)
    if getattr(config, "tune", None) is not None:
        from dlcli.config.tune import check_tune

        check_tune(
            config,
            locate=lambda loc: _where(loc, name, _line_index(node), parsed, text),
            load=lambda more: load_pipeline_text(
                text, source=source, overrides=[*(overrides or []), *more]
            ),
        )
    return LoadedPipeline(config=config, path=source, raw=data)


ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")  # $${ escapes, ${...}, a lone ${
STR_TAG = "tag:yaml.org,2002:str"
ENV_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(:-(.*))?$", re.DOTALL)


def _interpolate_env(node: yaml.Node | None, source: str, text: str) -> yaml.Node | None:
    """Replace `${VAR}` and `${VAR:-default}` in string values by the environment's values,
    before the schema sees them (`$${` is a literal `${`). A value written without quotes is
    typed again afterwards, like any YAML scalar: `epochs: ${EPOCHS:-3}` is the number 3;
    quote it (`"${X}"`) to keep a string. Keys are never substituted."""
    resolver = yaml.SafeLoader("")
    seen: set[int] = set()  # an aliased node is one node: substitute it once

    def walk(n: yaml.Node, loc: Loc) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                walk(value_node, (*loc, str(key_node.value)))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*loc, str(i)))
        elif isinstance(n, yaml.ScalarNode) and n.tag == STR_TAG and "${" in n.value:
            n.value = ENV_REFERENCE.sub(lambda m: _env_value(m, n, loc, source, text), n.value)
            explicit = text[n.start_mark.index : n.start_mark.index + 1] == "!"  # `!!str ${N}`
            if n.style is None and not explicit:  # plain: typed like the text it now holds
                n.tag = resolver.resolve(yaml.ScalarNode, n.value, (True, False))

    if node is not None:
        walk(node, ())
    return node


def _env_value(match: re.Match[str], node: yaml.Node, loc: Loc, source: str, text: str) -> str:
    if match.group(0) == "$${":
        return "${"
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    source_line = text.splitlines()[line - 1] if text else ""
    snippet = f"\n  {line:>4} | {source_line}\n       | {' ' * (col - 1)}^"
    where, key = f"{source}:{line}:{col}", ".".join(loc) or "(top level)"
    parsed = ENV_NAME.match(match.group(1) or "")
    if parsed is None or "${" in (parsed.group(3) or ""):
        raise ConfigError(
            f"{where}: invalid environment reference in `{key}`: `{match.group(0)}`. "
            "Expected ${NAME} or ${NAME:-default} (no reference inside a default)." + snippet,
            hint="write $${ for a literal ${",
        )
    name, default = parsed.group(1), parsed.group(3)
    value = os.environ.get(name)
    if value is None or (value == "" and default is not None):  # as the shell's ${X:-d}
        if default is None:
            raise ConfigError(
                f"{where}: `{key}` uses the environment variable `{name}`, which is not set."
                + snippet,
                hint=f"set it (`export {name}=...`), or give a default: ${{{name}:-VALUE}}",
            )
        return default
    return value


def _construct(node: yaml.Node | None) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _recursive_alias_error(found: RecursiveAlias, source: str, text: str) -> ConfigError:
    anchor, line, col = found.anchor, found.line, found.column
    source_line = text.splitlines()[line - 1]
    return ConfigError(
        f"{source}:{line}:{col}: recursive YAML alias: `*{anchor}` refers to the node "
        f"`&{anchor}` (line {found.anchor_line}) that contains it, so the value would "
        "contain itself. Recursive anchors/aliases are not supported."
        f"\n  {line:>4} | {source_line}\n       | {' ' * (col - 1)}{'^' * (len(anchor) + 1)}",
        hint=f"write the values out in full, or anchor a node outside the one using `*{anchor}`",
    )


def _move_classification_options(data: dict[str, Any], name: str) -> None:
    """dlcli 0.1 kept `top_k` and `tta` under `evaluate:`; they are classification options
    now (`task.top_k`, `task.tta`). Runs written before still open, with a note."""
    import logging

    evaluate, task = data.get("evaluate"), data.get("task", {})
    if not isinstance(evaluate, dict) or not isinstance(task, dict):
        return
    moved = [k for k in ("top_k", "tta") if k in evaluate]
    if not moved or task.get("type", "classification") != "classification":
        return
    for key in moved:
        task.setdefault(key, evaluate.pop(key))
    data["task"] = {"type": "classification", **task}
    logging.getLogger("dlcli").warning(
        "%s: evaluate.%s moved to task.%s (classification options now live in the task)",
        name,
        "/".join(moved),
        "/".join(moved),
    )


def _line_index(node: yaml.Node | None) -> dict[Loc, tuple[int, int]]:
    """Map each key path to the (line, column) of its key in the YAML text, 1-based."""
    index: dict[Loc, tuple[int, int]] = {}

    def walk(n: yaml.Node, loc: Loc) -> None:
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                child = (*loc, str(key_node.value))
                index[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                walk(value_node, child)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                index[(*loc, str(i))] = (item.start_mark.line + 1, item.start_mark.column + 1)
                walk(item, (*loc, str(i)))

    if node is not None:
        index[()] = (1, 1)
        walk(node, ())
    return index


def _user_loc(err_loc: tuple[Any, ...], model: type[BaseModel]) -> tuple[Loc, type | None]:
    """Drop union tags from pydantic's location; return the key path and the model holding it."""
    loc: list[str] = []
    current: Any = model
    parts = list(err_loc)
    while parts:
        part = str(parts.pop(0))
        fields = _fields(current)
        if fields is None:
            loc.append(part)
            current = None
            continue
        if part not in fields and part == _tag(current):
            continue  # pydantic names the tag of a tagged union; the YAML does not
        if part not in fields:
            loc.append(part)
            current = None if parts else current  # the last part is the rejected key
            continue
        loc.append(part)
        current = _unwrap(fields[part].annotation)
        if isinstance(current, tuple):  # a tagged union: the next location part is the tag
            tag = str(parts.pop(0)) if parts else None
            current = next((m for m in current if _tag(m) == tag), None)
    return tuple(loc), current


def _fields(model: Any) -> dict[str, Any] | None:
    return model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    models = tuple(a for a in args if _fields(a) is not None)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if len(models) == 1:
            return models[0]
        return models or None
    return annotation if _fields(annotation) is not None else None


def _tag(model: Any) -> str | None:
    field_info = (_fields(model) or {}).get("type")
    args = typing.get_args(field_info.annotation) if field_info else ()
    return str(args[0]) if args else None


def _describe(
    err: Any,
    source: str,
    lines: dict[Loc, tuple[int, int]],
    overrides: list[Override],
    text: str,
    model: type[BaseModel],
) -> str:
    loc, holder = _user_loc(err["loc"], model)
    dotted = ".".join(loc) or "(top level)"
    kind = err["type"]
    hint: str | None = None
    if kind == "extra_forbidden":
        valid = sorted(_fields(holder) or {}) if holder else []
        message = f"unknown key `{dotted}`."
        if valid:
            message += f" Expected one of: {', '.join(valid)}."
        hint = did_you_mean(loc[-1], valid)
    elif kind == "union_tag_invalid":
        expected = err["ctx"]["expected_tags"].replace("'", "")
        tag = err["ctx"]["tag"]
        message = f"`{dotted}.type` is `{tag}`. Expected one of: {expected}."
        hint = did_you_mean(tag, [t.strip() for t in expected.split(",")])
        loc = (*loc, "type")
    elif kind == "union_tag_not_found":
        message = f"`{dotted}` needs a `type:` key. {err['msg']}."
    elif kind in ("literal_error", "enum") and isinstance(err.get("input"), str):
        choices = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        message = f"invalid value for `{dotted}`: `{err['input']}`. Expected one of: "
        message += ", ".join(choices) + "."
        hint = did_you_mean(err["input"], choices)
    elif kind == "missing":
        message = f"missing required key `{dotted}`."
    else:
        received = err.get("input")
        shown = repr(received) if not isinstance(received, dict) else "a mapping"
        message = f"invalid value for `{dotted}`: {err['msg']}. Received: {shown}."
    where, snippet = _where(loc, source, lines, overrides, text)
    out = f"{where}: {message}"
    if hint:
        out += f"\n  hint: {hint}"
    return out + snippet


def _where(
    loc: Loc,
    source: str,
    lines: dict[Loc, tuple[int, int]],
    overrides: list[Override],
    text: str,
) -> tuple[str, str]:
    for keys, _, override_text in overrides:
        if loc[: len(keys)] == keys or keys[: len(loc)] == loc:
            return f"--set {override_text}", ""
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    if probe not in lines:
        return source, ""
    line, col = lines[probe]
    source_line = text.splitlines()[line - 1] if text else ""
    key_len = len(probe[-1]) if probe else 1
    snippet = f"\n  {line:>4} | {source_line}\n       | {' ' * (col - 1)}{'^' * key_len}"
    return f"{source}:{line}:{col}", snippet
