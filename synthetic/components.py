"""What every pluggable component (data model, encoder, objective) shares.

A component is a frozen dataclass: its fields are its hyperparameters, checked in ``__post_init__``, and
its YAML in ``conf/synthetic/<group>/`` names it with ``_target_`` so Hydra builds it (:func:`build`). The
fields listed in ``TRACED`` are passed to the compiled program as traced scalars (:meth:`traced`; a choice
among strings, ``CHOICES``, as its index); the rest is static (:meth:`static` blanks the traced ones, so
runs that differ only in them share one compilation).
A user's own component lives in the user's own module: nothing in the package switches on its name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Any, ClassVar

import jax.numpy as jnp

from theory.runrecord import expect  # noqa: E402,F401  (the one validation helper; components import it from here)


@functools.cache
def _static_class(cls: type) -> type:
    """The class of ``cls``'s static copies (:meth:`Component.static`): reading a traced field stops with
    the field named (inside the compiled run its value is ``hp[field]``); equality and hash use the
    static fields alone, so copies that differ only in traced values key one compilation."""
    traced: tuple[str, ...] = cls.TRACED  # type: ignore[attr-defined]  # a Component subclass

    def __getattribute__(self, name):
        if name in traced:
            key = cls.KEY
            raise TypeError(
                f"{key}.{name} is traced (in TRACED): inside the compiled run its value is hp[{name!r}], "
                f"not self.{name}: read hp[{name!r}] there"
            )
        return object.__getattribute__(self, name)

    def static_fields(self) -> tuple:
        return tuple(
            object.__getattribute__(self, f.name) for f in dataclasses.fields(cls) if f.name not in traced
        )

    namespace = {
        "__getattribute__": __getattribute__,
        "__eq__": lambda a, b: type(a) is type(b) and static_fields(a) == static_fields(b),
        "__hash__": lambda a: hash((cls, static_fields(a))),
        "__repr__": lambda a: f"{cls.__qualname__}(static, traced: {', '.join(traced)})",
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "_STATIC": True,
    }
    return type(cls.__name__, (cls,), namespace)


@dataclasses.dataclass(frozen=True)
class Component:
    TRACED: ClassVar[tuple[str, ...]] = ()
    #: Traced fields that name one of a few choices (a switch): traced as the choice's index, so runs that
    #: differ only in the switch share one program (its code branches on hp[field] == index).
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    KEY: ClassVar[str] = "component"  # its config group, for error messages
    #: Class attributes and methods that state an exact prediction (theory's name, optimum, model): a
    #: subclass does not inherit them; it gets a prediction only by declaring one (``THEORY = Clip.THEORY``
    #: inherits explicitly), so a new loss never reports a built-in's theory under its own name.
    PREDICTION: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "PREDICTION" in cls.__dict__ or cls.__dict__.get("_STATIC"):  # a kind's base; a static copy
            return
        root = next(b for b in cls.__mro__ if "PREDICTION" in b.__dict__)
        for name in cls.PREDICTION:
            if name not in cls.__dict__:
                setattr(cls, name, root.__dict__[name])

    def traced(self) -> dict:
        """The traced hyperparameters as float32 scalars (finite: checked here, naming the key); a choice
        (CHOICES) as its index."""
        out = {}
        for f in self.TRACED:
            v = getattr(self, f)
            if f in self.CHOICES:
                expect(v in self.CHOICES[f], f"{self.KEY}.{f}", v, f"one of {list(self.CHOICES[f])}")
                v = self.CHOICES[f].index(v)
            expect(isinstance(v, int | float) and math.isfinite(v), f"{self.KEY}.{f}", v, "a finite number")
            out[f] = jnp.float32(v)
        return out

    def start(self, params, hp: dict):
        """The model's freshly initialised parameters (an ``nnx.State``), given this component's traced
        hyperparameters ``hp``: a parameter that starts at a traced field's value is set here (the model is
        built from the static copy, which cannot read it; objectives.LearnedTemperature). Called on the
        run's objective only (``train.init_carry``): the objective owns the parameters beside the encoders;
        a data model's or an encoder's ``start`` is never called."""
        return params

    def static(self):
        """A copy without the traced fields (reading one stops, naming it): the part that keys the
        compilation."""
        blank = object.__new__(_static_class(type(self)))
        for f in dataclasses.fields(self):
            if f.name not in self.TRACED:
                object.__setattr__(blank, f.name, getattr(self, f.name))
        return blank


#: What a field declared with each plain type accepts (bool is not a number here: ``encoder.h=true``).
_TYPES = {
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _check_types(conf: dict, key: str) -> None:
    """Stop on a value whose type is not its field's declared type (int, float, bool, str), naming the key.

    The component nodes are free-form in the schema (a user's component has its own fields), so Hydra
    cannot check them; the dataclass's annotations can.
    """
    from hydra.utils import get_class

    try:
        cls = get_class(conf["_target_"])
        hints = typing.get_type_hints(cls)
    except Exception:  # an unknown target is reported by instantiate, with its own message
        return
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for name, value in conf.items():
        if name in fields and hints.get(name) in _TYPES:
            what, ok = _TYPES[hints[name]]
            expect(
                ok(value), f"{key}.{name}", value, f"{what} ({cls.__name__}.{name} is {hints[name].__name__})"
            )


def build(node: Any, key: str, base: type):
    """Instantiate a component from its config node (``_target_`` + fields), or pass a built one through.

    A misspelt or unknown field stops with its key named; so does a target that is not a ``base``.
    """
    if isinstance(node, base):
        return node
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    conf = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    if "_target_" not in conf:
        raise ValueError(
            f"{key}: no _target_ naming the Python class that builds it (got keys {sorted(conf)})"
        )
    _check_types(conf, key)
    try:
        obj = instantiate(conf)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, TypeError) and "unexpected keyword argument" in str(cause):
            bad = str(cause).split("argument")[-1].strip(" '\"")
            raise ValueError(f"{key}.{bad}: not a field of {conf['_target_']}") from None
        if isinstance(cause, ValueError):
            raise cause from None
        raise ValueError(f"{key}._target_={conf['_target_']!r}: {e}") from None
    if not isinstance(obj, base):
        raise ValueError(
            f"{key}._target_={conf['_target_']!r}: builds {type(obj).__name__}, not a {base.__name__}"
        )
    return obj
