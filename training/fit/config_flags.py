"""A command-line flag per `TrainConfig` field, and back: the train and cv commands' flags are
generated here, so every flag is a config field and every saved config can be turned back into
the command that reproduces it (`command_for`)."""

from __future__ import annotations

import argparse
import shlex
import types
import typing
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from pydantic.fields import FieldInfo

from training.fit.train_config import TrainConfig

REQUIRED_TRAIN_FLAGS = ("data", "out")


CONFIG_COMMANDS = ("train", "cv", "linear-head", "linear-head-cv")


VALUE_TYPES: dict[object, Callable[[str], object]] = {int: int, float: float, str: str, Path: Path}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation: object) -> object:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def add_config_arguments(parser: argparse.ArgumentParser, saved: TrainConfig | None) -> None:
    """A flag per config field; with a `saved` config (--config), its values are the defaults,
    except --out: a rerun writes where it is told, never over the run it came from."""
    parser.add_argument(
        "-c",
        "--config",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="rerun a saved configuration (a run's config.json or a cv's cv_config.json): its "
        "values are the defaults, flags given here override them",
    )
    for name, field in TrainConfig.model_fields.items():
        if saved is not None and name != "out":
            default = getattr(saved, name)
        else:
            default = (
                None
                if name in REQUIRED_TRAIN_FLAGS
                else field.get_default(call_default_factory=True)
            )
        required = name in REQUIRED_TRAIN_FLAGS and (saved is None or name == "out")
        _add_field_argument(parser, name, field, default, required=required)


def _add_field_argument(
    parser: argparse.ArgumentParser,
    name: str,
    field: FieldInfo,
    default: object,
    *,
    required: bool,
) -> None:
    annotation = _unwrap_optional(field.annotation)
    shown = None if name in REQUIRED_TRAIN_FLAGS else field.get_default(call_default_factory=True)
    if shown in ([], {}):
        shown = None  # an empty list or mapping: "none given" needs no default text
    help_text = (field.description or "") + (f" (default: {shown})" if shown is not None else "")
    flag, text = _flag(name), help_text or None
    if isinstance(default, Enum):
        default = default.value
    if annotation is bool:
        action = argparse.BooleanOptionalAction
        parser.add_argument(flag, dest=name, help=text, action=action, default=default)
    elif typing.get_origin(annotation) is list:
        parser.add_argument(flag, dest=name, help=text, nargs="+", default=default)
    elif typing.get_origin(annotation) is dict:
        parser.add_argument(
            flag, dest=name, help=text, nargs="+", type=_key_value, default=default, metavar="K=V"
        )
    elif typing.get_origin(annotation) is typing.Literal:
        choices = list(typing.get_args(annotation))
        parser.add_argument(flag, dest=name, help=text, choices=choices, default=default)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = [member.value for member in annotation]
        parser.add_argument(flag, dest=name, help=text, choices=choices, default=default)
    else:
        value_type = VALUE_TYPES.get(annotation, str)
        parser.add_argument(
            flag, dest=name, help=text, type=value_type, default=default, required=required
        )


def _key_value(word: str) -> tuple[str, str]:
    key, equals, value = word.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {word!r}")
    return key, value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for name in TrainConfig.model_fields}
    for name, value in values.items():
        if isinstance(value, list) and value and isinstance(value[0], tuple):
            values[name] = dict(value)
    return TrainConfig.model_validate(values)


def command_for(job: str, config: TrainConfig) -> str:
    """The shortest command line that reproduces `config`."""
    words = ["python", "-m", "training", job]
    defaults = TrainConfig(data=config.data, out=config.out)
    for name in TrainConfig.model_fields:
        value = getattr(config, name)
        if name not in REQUIRED_TRAIN_FLAGS and value == getattr(defaults, name):
            continue
        if isinstance(value, bool):
            words.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            words += [_flag(name), *map(str, value)]
        elif isinstance(value, dict):
            words += [_flag(name), *(f"{key}={item}" for key, item in value.items())]
        else:
            words += [_flag(name), str(value.value if isinstance(value, Enum) else value)]
    return shlex.join(words)
