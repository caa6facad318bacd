"""``InferenceSettings``: what running a trained model needs besides its weights, stored with them.

The trainer writes them into every weights file (safetensors metadata ``anchordet_inference``,
JSON) and into the checkpoints; ``anchordet convert`` writes them for torchvision's weights;
``predict``, ``evaluate``, ``export`` and ``convert --to torchvision`` read them. The eval resize
is the data pipeline's own vocabulary (``DataConfig.eval_transform``), so
``anchordet.data.transforms.build_transforms(settings, train=False)`` is the resize the model was
evaluated with.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from anchordet.config.metadata import check_inference_fields, parse_json_field
from anchordet.config.schema import ConfigError, DataConfig, DigitsOptions, section_from_dict
from anchordet.errors import UserError

METADATA_KEY = "anchordet_inference"


@dataclass(frozen=True)
class InferenceSettings:
    """Attributes:
        eval_transform: "resize" (keep ratio: ``min_size`` / ``max_size``), "fixed"
            (``fixed_size`` square) or None (images as given: weights that do not say).
        min_size, max_size, fixed_size: the resize's sizes (None where unknown); a multi-scale
            training run keeps its largest ``min_size``.
        class_names: K names; empty: unknown (callers name classes by index).
        category_ids: the dataset's category id of each label 0..K-1; empty: unknown.
        dataset: what the model was trained on ("digits" or a dataset YAML), None if unknown.
        digits: the digits options of that training run (``dataset == "digits"``), so that
            ``evaluate`` rebuilds the same test scenes.
    """

    eval_transform: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    fixed_size: int | None = None
    class_names: tuple[str, ...] = ()
    category_ids: tuple[int, ...] = ()
    dataset: str | None = None
    digits: DigitsOptions | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "category_ids", tuple(int(c) for c in self.category_ids))
        if self.eval_transform not in (None, "resize", "fixed"):
            raise ConfigError(f"eval_transform: {self.eval_transform!r} is not one of resize, fixed")

    @property
    def eval_min_size(self) -> int | None:
        """The shorter side of the keep-ratio resize (named as ``DataConfig.eval_min_size``, so
        that ``build_transforms`` reads either)."""
        return self.min_size

    @staticmethod
    def from_training(data: DataConfig, class_names: Sequence[str], category_ids: Sequence[int]) -> "InferenceSettings":
        """The settings of a model trained with ``data`` on a dataset with these classes."""
        return InferenceSettings(data.eval_transform, data.eval_min_size, data.max_size, data.fixed_size,
                                 tuple(class_names), tuple(category_ids), data.dataset,
                                 data.digits if data.dataset == "digits" else None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists for tuples, a mapping for ``digits``)."""
        values = dataclasses.asdict(self)
        values["class_names"], values["category_ids"] = list(self.class_names), list(self.category_ids)
        if self.digits is not None:
            values["digits"] = {k: list(v) if isinstance(v, tuple) else v for k, v in values["digits"].items()}
        return values

    @staticmethod
    def from_dict(values: Mapping[str, Any], source: str = "inference settings",
                  num_classes: int | None = None) -> "InferenceSettings":
        """The inverse of ``to_dict``; missing fields take the defaults (unknown). Values read
        from a file are checked as input (``anchordet.config.metadata.check_inference_fields``):
        sides in bounds, and with ``num_classes`` one class name and category id per class.

        Raises:
            ConfigError (a UserError): naming ``source`` and the field, for an unknown field or a
            wrong value.
        """
        if not isinstance(values, Mapping):
            raise UserError(f"{source}: the inference settings must be a mapping, got {type(values).__name__}")
        try:
            settings = section_from_dict(InferenceSettings, values, source)
        except ConfigError as exc:  # __post_init__'s checks do not know the source
            raise exc if str(exc).startswith(source) else ConfigError(f"{source}.{exc}") from None
        check_inference_fields(settings, source, num_classes)
        return settings

    def to_metadata(self) -> dict[str, str]:
        """The safetensors metadata entry (``save_weights(..., metadata=...)``)."""
        return {METADATA_KEY: json.dumps(self.to_dict())}

    @staticmethod
    def from_metadata(metadata: Mapping[str, str], source: str, num_classes: int | None = None) -> "InferenceSettings":
        """The settings in a weights file's metadata (all unknown when it has none), checked as
        ``from_dict`` does (``num_classes``: the model's, to check the class names against).

        Raises:
            UserError: naming ``source`` (the file), for JSON that does not parse, nests too
            deeply, or has wrong fields.
        """
        if METADATA_KEY not in metadata:
            return InferenceSettings()
        values = parse_json_field(metadata[METADATA_KEY], source, METADATA_KEY)
        return InferenceSettings.from_dict(values, f"{source}: {METADATA_KEY}", num_classes)
