"""``deserialize_layer``: a layer (or model) from its ``{"class_name", "config"}`` entry.

Classes are looked up by name in dojang's own registry of layer classes (and the caller's
``custom_objects``), so a saved config can describe a model but never name arbitrary code.
"""

from __future__ import annotations

import inspect

from dojang.layers.base import REGISTRY, Layer


def deserialize_layer(entry: dict, custom_objects: dict | None = None) -> Layer:
    """Make a layer from ``{"class_name", "config"}``, looking the class up by name only.

    Only dojang's own classes (and those passed in ``custom_objects``) can be made, so
    a model file can never name arbitrary code.

    Raises:
        ValueError: for an unknown class name or a config the class rejects.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) \
            or not isinstance(entry.get("config"), dict):
        raise ValueError(f"layer entry must be {{'class_name': str, 'config': dict}}. "
                         f"Received: {str(entry)[:200]}")
    name = entry["class_name"]
    cls = (custom_objects or {}).get(name) or REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r}; pass it in custom_objects= if it is "
                         f"your own")
    try:
        if "custom_objects" in inspect.signature(cls.from_config).parameters:
            return cls.from_config(entry["config"], custom_objects)
        return cls.from_config(entry["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"cannot rebuild layer {name!r} from its config: {e}") from None
