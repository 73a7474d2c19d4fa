"""gp-provisioners-core: the shared base of the Gateway Provisioners kernel provisioners."""

from ._version import __version__
from .channel import KernelChannel, KernelChannelError
from .config import RemoteProvisionerConfigMixin
from .container_provisioner import ContainerProvisionerBase
from .errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
    LaunchTimeoutError,
    ProvisionerError,
    UnauthorizedUserError,
)
from .phases import LaunchPhases
from .remote_provisioner import RemoteProvisionerBase
from .response_manager import ResponseManager

__all__ = [
    "ContainerProvisionerBase",
    "InvalidLaunchParameterError",
    "KernelChannel",
    "KernelChannelError",
    "KernelSpecConfigError",
    "LaunchFailedError",
    "LaunchPhases",
    "LaunchTimeoutError",
    "ProvisionerError",
    "RemoteProvisionerBase",
    "RemoteProvisionerConfigMixin",
    "ResponseManager",
    "UnauthorizedUserError",
    "__version__",
]
