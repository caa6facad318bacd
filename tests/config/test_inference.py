"""``InferenceSettings``: the typed settings a weights file carries (safetensors metadata, JSON)."""
import json

import pytest

from anchordet.config.inference import METADATA_KEY, InferenceSettings
from anchordet.config.schema import DataConfig, DigitsOptions
from anchordet.errors import UserError


def test_from_training_and_the_metadata_round_trip():
    data = DataConfig(dataset="digits", digits=DigitsOptions(num_val=30, seed=2), eval_transform="resize",
                      min_size=256, max_size=320)
    settings = InferenceSettings.from_training(data, [str(d) for d in range(10)], range(1, 11))
    assert (settings.eval_transform, settings.min_size, settings.max_size) == ("resize", 256, 320)
    assert settings.category_ids == tuple(range(1, 11)) and settings.digits == DigitsOptions(num_val=30, seed=2)
    metadata = settings.to_metadata()
    assert json.loads(metadata[METADATA_KEY])["digits"]["digits_per_image"] == [1, 4]  # plain JSON
    assert InferenceSettings.from_metadata(metadata, "w.safetensors") == settings
    other = InferenceSettings.from_training(DataConfig(dataset="coco.yaml"), ["a"], [7])
    assert other.digits is None and other.dataset == "coco.yaml"


def test_weights_without_settings_mean_unknown():
    settings = InferenceSettings.from_metadata({"anchordet_model": "{}"}, "w.safetensors")
    assert settings == InferenceSettings() and settings.eval_transform is None and settings.class_names == ()


@pytest.mark.parametrize("text, message", [
    ("{not json", r"w.safetensors: metadata anchordet_inference is not valid JSON"),
    ("[1, 2]", r"w.safetensors: anchordet_inference: the inference settings must be a mapping, got list"),
    ('{"min_sise": 3}', r"w.safetensors: anchordet_inference: unknown key\(s\) \['min_sise'\]"),
    ('{"min_size": "big"}', r"w.safetensors: anchordet_inference.min_size: 'big' is not a int \| None"),
    ('{"eval_transform": "crop"}', r"eval_transform: 'crop' is not one of resize, fixed"),
])
def test_bad_metadata_names_the_file_and_the_field(text, message):
    with pytest.raises(UserError, match=message):
        InferenceSettings.from_metadata({METADATA_KEY: text}, "w.safetensors")
