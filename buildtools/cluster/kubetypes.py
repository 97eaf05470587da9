"""Kubernetes values as pydantic types, and the one translation of their errors into ConfigError.

Each type states its rule as constraints pydantic enforces and puts in the JSON schema
(pattern, length, minimum: what an editor checks in a spec file too), and `on_error` gives
it the one-line message a value breaking the rule gets; `config_error` puts the field's
path in front: "resources.worker.limits.memory: 'lots' is not ..." or "n_workers must be ...".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, NoReturn

from kubernetes.utils.quantity import parse_quantity
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    WrapValidator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs it, not typing's, on Python < 3.12

from buildtools.errors import ConfigError
from buildtools.platforms import KNOWN_PLATFORMS

# Errors of this type carry a finished message; pydantic's own errors are rewritten by on_error.
ERROR_TYPE = "minimaldask"

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUANTITY = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


# --- errors ----------------------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Reject a value with a finished message (inside a validator)."""
    raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message})


def on_error(template: str) -> Any:
    """The message of any error pydantic finds in the value itself; "{value}" is its repr.

    Errors of nested values (an item, a field) and finished messages pass through unchanged.
    It comes after a type's other validators: pydantic runs later metadata around earlier.
    """

    def wrap(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            if any(e["loc"] == () and e["type"] != ERROR_TYPE for e in error.errors()):
                fail(template.replace("{value}", repr(value)))
            raise

    return WrapValidator(wrap)


def _path(loc: Iterable[int | str]) -> list[str]:
    """A pydantic location as field names: list indexes go (the message shows the value), and a
    bad mapping key is named by the message, not by its own location."""
    names = [str(part) for part in loc if not isinstance(part, int)]
    return names[:-2] if names[-1:] == ["[key]"] else names


def config_error(error: ValidationError, what: str = "") -> ConfigError:
    """The first error as one line: the field's path, then the message."""
    first = error.errors()[0]
    where = ".".join(filter(None, [what, *_path(first["loc"])]))
    message = "must be given" if first["type"] == "missing" else first["msg"]
    if not where:
        return ConfigError(message)
    # "n_workers must be ..." reads as a sentence; any other message follows a colon.
    return ConfigError(f"{where} {message}" if message.startswith("must ") else f"{where}: {message}")


def validate(type_: Any, what: str, value: object) -> Any:
    """One value of a type outside a model, e.g. a function's argument; ConfigError names `what`."""
    try:
        return TypeAdapter(type_).validate_python(value)
    except ValidationError as error:
        raise config_error(error, what) from None


# --- containers ------------------------------------------------------------------------------------


def _sequence(value: Any) -> Any:
    # Pydantic would take a set too, whose order (so the manifests') changes from run to run.
    if not isinstance(value, Sequence):
        raise ValueError("not a sequence")
    return value


def listing(template: str) -> tuple[Any, Any]:
    """The checks of a list field (a tuple once validated): a sequence, or the message `template`."""
    return BeforeValidator(_sequence), on_error(template)


def check_keys(value: Any, known: Sequence[str]) -> Any:
    """Rejects a mapping's unknown key, naming the known ones (extra="forbid" alone would not list them)."""
    if isinstance(value, Mapping) and (unknown := sorted(set(value) - set(known), key=str)):
        fail(f"unknown key {unknown[0]!r} (known: {', '.join(known)})")
    return value


def dns_label(max_length: int = 63, *, rfc1035: bool = False) -> tuple[Any, Any]:
    start = "a lowercase letter" if rfc1035 else "a lowercase letter or digit"
    return Field(pattern=DNS1035_LABEL if rfc1035 else DNS1123_LABEL, max_length=max_length), on_error(
        f"must be at most {max_length} characters of lowercase letters, digits and '-', "
        f"starting with {start} and ending with a letter or digit, got {{value}}"
    )


# --- scalars ---------------------------------------------------------------------------------------

DnsLabel = Annotated[str, *dns_label()]
DnsSubdomain = Annotated[
    str,
    Field(pattern=f"^{_SUBDOMAIN}$", max_length=253),
    on_error("must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.'), got {value}"),
]
Count = Annotated[int, Field(ge=0, strict=True), on_error("must be an integer >= 0, got {value}")]
Platform = Annotated[
    Literal[KNOWN_PLATFORMS],  # type: ignore[valid-type]
    on_error(f"must be one of {', '.join(KNOWN_PLATFORMS)}, got {{value}}"),
]
ImageRef = Annotated[
    str, Field(pattern=r"^\S+$"), on_error("must be a non-empty image reference without whitespace, got {value}")
]
# A word of an entrypoint variable that the shell splits on whitespace (ARGUMENTS, EXTRA_*).
Word = Annotated[str, Field(pattern=r"^\S+$"), on_error("{value} must be a non-empty string without whitespace")]
EnvName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
    on_error("{value} is not a valid variable name (letters, digits, '_', not a digit first)"),
]


def _label_key_parts(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if len(prefix) > 253 or len(name) > 63:
        raise ValueError("too long")
    return key


LabelKey = Annotated[
    str,
    Field(pattern=f"^({_SUBDOMAIN}/)?{_LABEL_NAME}$"),
    AfterValidator(_label_key_parts),
    on_error("{value} is not a valid label key ([prefix/]name, name at most 63 characters)"),
]
LabelValue = Annotated[
    str,
    Field(pattern=f"^({_LABEL_NAME})?$", max_length=63),
    on_error("{value} is not a valid label value (a string of at most 63 letters, digits, '-', '_', '.')"),
]


def _number_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _parses(text: str) -> str:
    parse_quantity(text)  # the client's parser has the last word (a ValueError becomes the message)
    return text


# A quantity ("500m", "2", "1.5Gi"), kept as a string; a number is taken as its text.
Quantity = Annotated[
    str,
    Field(pattern=QUANTITY),
    AfterValidator(_parses),
    BeforeValidator(_number_as_text),
    on_error("{value} is not a Kubernetes quantity (like 500m, 2, 1.5Gi)"),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": QUANTITY}, {"type": "number", "minimum": 0}]}),
]


def _known_resource(name: str) -> str:
    if name not in STANDARD_RESOURCES and not name.startswith("hugepages-") and "/" not in name:
        fail(f"unknown resource {name!r} (cpu, memory, ephemeral-storage, hugepages-*, or vendor/name)")
    return name


ResourceName = Annotated[LabelKey, AfterValidator(_known_resource)]

# --- collections -----------------------------------------------------------------------------------

Words = Annotated[tuple[Word, ...], *listing("must be a list of strings, got {value}")]


def _not_an_option(word: str) -> str:
    if word.startswith("-"):
        fail(f"{word!r} looks like an option; give package names only")
    return word


PackageNames = Annotated[
    tuple[Annotated[Word, AfterValidator(_not_an_option)], ...], *listing("must be a list of strings, got {value}")
]
Names = Annotated[tuple[DnsSubdomain, ...], *listing("must be a list of names, got {value}")]
Platforms = Annotated[tuple[Platform, ...], *listing("must be a list of platforms, got {value}")]
ImageRefs = Annotated[
    tuple[ImageRef, ...], Field(min_length=1), *listing("must be a non-empty list of image references, got {value}")
]
Labels = Annotated[dict[LabelKey, LabelValue], on_error("must be a mapping, got {value}")]
Quantities = Annotated[dict[ResourceName, Quantity], on_error("must be a mapping, got {value}")]


def _string_values(env: Any) -> Any:
    for key, value in env.items() if isinstance(env, Mapping) else ():
        if not isinstance(value, str):
            fail(f"the value of {key} must be a string, got {value!r}")
    return env


EnvVars = Annotated[dict[EnvName, str], BeforeValidator(_string_values), on_error("must be a mapping, got {value}")]


@with_config(ConfigDict(extra="forbid"))
class Toleration(TypedDict, total=False):
    """A pod toleration, as Kubernetes takes it."""

    key: str
    operator: Annotated[Literal["Exists", "Equal"], on_error("must be Exists or Equal, got {value}")]
    value: str
    effect: Annotated[
        Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
        on_error("must be one of NoSchedule, PreferNoSchedule, NoExecute, got {value}"),
    ]
    tolerationSeconds: Count


def _exists_has_no_value(toleration: Toleration) -> Toleration:
    if toleration.get("operator") == "Exists" and toleration.get("value"):
        fail("a toleration with operator Exists takes no value")
    return toleration


@with_config(ConfigDict(extra="forbid"))
class Affinity(TypedDict, total=False):
    """A pod's affinity, passed to Kubernetes as given (its own schema checks the inside)."""

    nodeAffinity: dict[str, Any]
    podAffinity: dict[str, Any]
    podAntiAffinity: dict[str, Any]


def _mapping_of(typed: Any) -> tuple[Any, ...]:
    """The checks of a TypedDict: a mapping, with only its keys."""
    keys = tuple(typed.__annotations__)
    return BeforeValidator(lambda value: check_keys(value, keys)), on_error("must be a mapping, got {value}")


Tolerations = Annotated[
    tuple[Annotated[Toleration, AfterValidator(_exists_has_no_value), *_mapping_of(Toleration)], ...],
    *listing("must be a list of tolerations, got {value}"),
]
AffinityRules = Annotated[Affinity, *_mapping_of(Affinity)]

DaskResourceName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$"),
    on_error("{value} must be a Dask resource name (letters, digits, _ . -)"),
]
DaskResourceAmount = Annotated[float, Field(gt=0), on_error("must be a number > 0, got {value}")]
DaskResources = Annotated[dict[DaskResourceName, DaskResourceAmount], on_error("must be a mapping, got {value}")]
