"""Two changes to moto that serve every service the endpoint answers, whatever the request.

- moto's server finds the service a request is for by listing its own package folder from
  disk on every request (a fifth of the endpoint's time on small requests); the list is
  read once instead.
- moto remembers every model instance it ever made (``BaseModel.__new__`` appends each to
  its class's ``instances_tracked``, for its own dashboard and reset), so nothing it
  drops is ever freed: each DynamoDB UpdateItem leaves two copies of the item, each SQS
  receive a copy of the message, each S3 object and part its key. The endpoint's memory
  grew with the length of the run. The lists hold their instances weakly instead: they
  still show every live instance, and let the others go.

``hevcq.emulator.s3disk`` installs these with its own changes and checks them against moto.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Iterable, Iterator
from typing import Any


class _Ref(weakref.ref):  # type: ignore[type-arg]  # refers to any model
    __slots__ = ("key",)
    key: int


class WeakInstances:
    """A model class's ``instances_tracked`` that keeps no instance alive."""

    def __init__(self, instances: Iterable[Any] = ()) -> None:
        self._refs: dict[int, _Ref] = {}
        for instance in instances:
            self.append(instance)

    def append(self, instance: object) -> None:
        """Track ``instance`` until it is freed."""
        try:
            ref = _Ref(instance, self._gone)
        except TypeError:  # a model without weak references is not tracked at all
            return
        ref.key = id(instance)
        self._refs[ref.key] = ref

    def _gone(self, ref: _Ref) -> None:
        if self._refs.get(ref.key) is ref:  # not a newer instance at the same address
            self._refs.pop(ref.key, None)

    def __iter__(self) -> Iterator[Any]:
        live = (ref() for ref in self._refs.copy().values())
        return iter([instance for instance in live if instance is not None])

    def __len__(self) -> int:
        return len(self._refs)


def _weakly_tracked(original: Any) -> Any:
    base = importlib.import_module("moto.core.common_models").BaseModel

    def __new__(cls: type, *_args: Any, **_kwargs: Any) -> Any:
        instance = super(base, cls).__new__(cls)  # what moto's does, less the strong list
        tracked = cls.instances_tracked  # type: ignore[attr-defined]
        if not isinstance(tracked, WeakInstances):  # a new class, or moto reset the lists
            tracked = WeakInstances(tracked)
            cls.instances_tracked = tracked  # type: ignore[attr-defined]
        tracked.append(instance)
        return instance

    __new__.__wrapped__ = original.__func__  # type: ignore[attr-defined]
    return staticmethod(__new__)


def _listed_once(original: Any) -> Any:
    names: tuple[str, ...] | None = None

    def list_of_moto_modules() -> tuple[str, ...]:
        nonlocal names
        if names is None:
            names = tuple(original())  # moto's package folder does not change while it runs
        return names

    list_of_moto_modules.__wrapped__ = original  # type: ignore[attr-defined]
    return list_of_moto_modules


def patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for each change."""
    from moto import backends  # noqa: PLC0415
    from moto.core.common_models import BaseModel  # noqa: PLC0415

    return [
        (backends, "list_of_moto_modules", _listed_once(backends.list_of_moto_modules)),
        (BaseModel, "__new__", _weakly_tracked(BaseModel.__dict__["__new__"])),
    ]


def needs() -> dict[str, bool]:
    """What these changes rely on in moto, each with whether the installed moto has it."""
    from moto.core import base_backend, common_models  # noqa: PLC0415

    app = importlib.import_module("moto.moto_server.werkzeug_app")
    new = common_models.BaseModel.__dict__.get("__new__")
    new_names = _unwrapped(getattr(new, "__func__", new)).__code__.co_names
    return {
        "the server finds a request's service with backends.list_of_moto_modules": (
            "list_of_moto_modules"
            in app.DomainDispatcherApplication.get_backend_for_host.__code__.co_names
        ),
        "moto_server.werkzeug_app has the app and handler the endpoint serves": all(
            hasattr(app, n)
            for n in ("DomainDispatcherApplication", "MotoRequestHandler", "create_backend_app")
        ),
        "BaseModel.__new__ only makes the instance and appends it to instances_tracked": (
            isinstance(new, staticmethod)
            and {"super", "__new__", "instances_tracked", "append"} == set(new_names)
        ),
        "InstanceTrackerMeta gives each model class its instances_tracked": (
            "instances_tracked" in base_backend.InstanceTrackerMeta.__new__.__code__.co_names
        ),
    }


def _unwrapped(f: Any) -> Any:
    return getattr(f, "__wrapped__", f)
