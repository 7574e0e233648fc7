"""The keras.applications backbones dlcli knows: constructor, preprocessing module, input size.

Plain data, no TensorFlow: `dlcli list backbones` and the schema read it instantly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    name: str  # the keras.applications constructor
    module: str  # keras.applications.<module>.preprocess_input
    size: int  # default (and ImageNet) input size


def _family(module: str, size: int, *names: str) -> dict[str, Backbone]:
    return {n: Backbone(n, module, size) for n in names}


BACKBONES: dict[str, Backbone] = {
    **_family("mobilenet", 224, "MobileNet"),
    **_family("mobilenet_v2", 224, "MobileNetV2"),
    **_family("mobilenet_v3", 224, "MobileNetV3Small", "MobileNetV3Large"),
    **_family("resnet", 224, "ResNet50", "ResNet101", "ResNet152"),
    **_family("resnet_v2", 224, "ResNet50V2", "ResNet101V2", "ResNet152V2"),
    **_family("densenet", 224, "DenseNet121", "DenseNet169", "DenseNet201"),
    **_family(
        "convnext",
        224,
        "ConvNeXtTiny",
        "ConvNeXtSmall",
        "ConvNeXtBase",
        "ConvNeXtLarge",
        "ConvNeXtXLarge",
    ),
    **_family("vgg16", 224, "VGG16"),
    **_family("vgg19", 224, "VGG19"),
    **_family("xception", 299, "Xception"),
    **_family("inception_v3", 299, "InceptionV3"),
    **_family("inception_resnet_v2", 299, "InceptionResNetV2"),
    **_family("nasnet", 224, "NASNetMobile"),
    **_family("nasnet", 331, "NASNetLarge"),
    **{
        f"EfficientNetB{i}": Backbone(f"EfficientNetB{i}", "efficientnet", size)
        for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
    },
    **{
        f"EfficientNetV2{v}": Backbone(f"EfficientNetV2{v}", "efficientnet_v2", size)
        for v, size in (
            ("B0", 224),
            ("B1", 240),
            ("B2", 260),
            ("B3", 300),
            ("S", 384),
            ("M", 480),
            ("L", 480),
        )
    },
}
