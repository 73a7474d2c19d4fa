"""The contract between :class:`~gp_k8s.KubernetesProvisioner` and the kind of object a kernel
runs as.

gp-k8s launches, watches and stops a kernel the same way whatever object holds it: it makes the
kernel's namespace and launch Secret, maps API errors, waits for the launcher and hands deleted
objects to the reaper.  What differs between a pod and, say, a custom resource an operator turns
into pods is a :class:`KernelObjectKind`: which template it reads, how it builds, creates and
deletes the object, how it reads the object's status from the shared watches, and which extra
watches it joins.  The provisioner holds one kind (:class:`~gp_k8s.pod_kind.PodKind` by default;
:meth:`~gp_k8s.KubernetesProvisioner.make_object_kind` chooses) and delegates to it.

A kind reads its provisioner only through a :class:`KernelObjectContext`: the kernel's id,
namespace and object name, the API client and the shared pod and event caches once they exist,
the operator's template, when the object was created, and the provisioner's public settings
and helpers.  gp-crd's ``CustomResourceKind`` is the other implementation; a new
custom-resource backend subclasses it or implements this class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gp_provisioners_core.watch import BackendWatch

from .client import CountingApiClient
from .event_cache import PodEventWatchCache
from .parameters import KernelParameters
from .pod_cache import PodState, PodWatchCache

if TYPE_CHECKING:
    from .provisioner import KubernetesProvisioner


@dataclass(eq=False)
class KernelObjectContext:
    """What a :class:`KernelObjectKind` may read of the kernel it serves.

    Made once per provisioner by :class:`~gp_k8s.KubernetesProvisioner` (its
    :attr:`~gp_k8s.KubernetesProvisioner.kernel_context`), which fills the mutable fields as
    the launch goes: ``api``, ``pods`` and ``events`` when it joins the shared watches,
    ``template`` in ``validate_launch``, ``created_at`` when it creates the object.  A kind reads
    them and may set its own state elsewhere; it must not replace them.
    """

    provisioner: KubernetesProvisioner
    """The provisioner, for its public settings (``termination_grace_period``,
    ``gpu_resource_name``, ``watch_namespace``...) and helpers (``track_deletion``,
    ``wait_kernel_stopped``, ``pod_events``, ``cached_warnings``, ``fatal_warnings``,
    ``pod_env``, ``launch_secret_env``).  Never its underscore attributes."""
    api: CountingApiClient | None = None
    """The API client, once the provisioner made it (before any watch is joined)."""
    pods: PodWatchCache | None = None
    """The process's shared watch of kernel pods (the provisioner's ``pod_selector``)."""
    events: PodEventWatchCache | None = None
    """The process's shared watch of Warning events about pods."""
    template: dict[str, Any] | None = None
    """The operator's template of the kernel's object (:meth:`KernelObjectKind.load_template`),
    None without one."""
    created_at: float = 0.0
    """``time.monotonic()`` when the object was submitted; 0 for a re-attached kernel."""

    @property
    def kernel_id(self) -> str:
        return str(self.provisioner.kernel_id)

    @property
    def namespace(self) -> str:
        """The namespace of the kernel's objects (empty before ``submit_kernel`` chose it)."""
        return self.provisioner.kernel_namespace_name

    @property
    def name(self) -> str:
        """The kernel's object's name (empty before it is created and once it is deleted)."""
        return self.provisioner.container_name

    @property
    def submitted(self) -> bool:
        """Whether the object was submitted and not yet deleted by this provisioner."""
        return self.provisioner.submitted

    @property
    def log(self) -> Any:
        """The provisioner's logger."""
        return self.provisioner.log


class KernelObjectKind(ABC):
    """The kind of object a kernel runs as; see the module docstring.

    Every method is called by :class:`~gp_k8s.KubernetesProvisioner` (named in each docstring);
    the blocking ones run on a worker thread, the others on the event loop and must not block
    (they read the shared caches, never the API).
    """

    name_limit: int = 63
    """The longest name the provisioner gives the kernel's object."""
    noun: str = "objects"
    """What a refused launch calls the kernel's objects (a custom resource: its kind)."""
    template_noun: str = "pod"
    """What an unusable-template error calls the template."""

    def __init__(self, context: KernelObjectContext) -> None:
        self.context = context

    # -- launch ------------------------------------------------------------------------------

    @abstractmethod
    def load_template(self) -> dict[str, Any] | None:
        """The operator's template of the object, None without one (blocking: called on a
        worker thread by ``validate_launch``; errors raise ``KernelSpecConfigError``)."""

    @abstractmethod
    def build(
        self, name: str, parameters: KernelParameters, cmd: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """The object's manifest, named ``name`` (pure; called by ``submit_kernel`` once the
        namespace and launch Secret exist).  A ``ValueError`` means the template is unusable."""

    @abstractmethod
    def create(self, api: CountingApiClient, body: dict[str, Any]) -> None:
        """Create ``body`` (blocking: called on a worker thread by ``submit_kernel``); an
        ``ApiException`` fails the launch naming :attr:`noun`."""

    def join_watches(self, api: CountingApiClient) -> None:
        """Join this kind's own shared watches (the pod and event watches are joined already).
        Called before every launch, clean-up and re-attach: must be cheap once joined.  The
        pod kind has none."""
        return None

    def watches(self) -> Sequence[BackendWatch]:
        """This kind's own watches, whose changes wake the launch check (the pod and event
        watches are added by the provisioner)."""
        return ()

    def watches_synced(self) -> bool:
        """Whether this kind's own watches have answered (``liveness_known``)."""
        return True

    @abstractmethod
    def log_launch(self) -> None:
        """Log the submitted object (called once by the core after ``submit_kernel``)."""

    # -- status, read from the shared caches -------------------------------------------------

    @abstractmethod
    def pod_state(self) -> PodState | None:
        """The pod the kernel's launcher runs in, from the shared pod cache (None: none yet)."""

    @abstractmethod
    def initial_states(self) -> set[str]:
        """The statuses of a kernel not running yet (``get_initial_states``)."""

    @abstractmethod
    def error_states(self) -> set[str]:
        """The statuses that end a launch (``get_error_states``)."""

    @abstractmethod
    def status(self) -> str:
        """The kernel's status, lower case; ``""`` when unknown or gone
        (``get_container_status``; called on every poll)."""

    @abstractmethod
    def describe_failure(self) -> str:
        """What the object and its pod say about a failure (no I/O)."""

    @abstractmethod
    async def detect_launch_failure(self) -> None:
        """Fail the launch (``provisioner.fail_launch``) as soon as its reason is known; called
        on every change of the launch watches while the launch waits."""

    @abstractmethod
    async def launch_report(self) -> str:
        """What the kernel's objects were doing, for a launch that timed out."""

    @abstractmethod
    async def poll(self) -> int | None:
        """None while the kernel runs, else its exit code (``poll``)."""

    # -- stop ------------------------------------------------------------------------------

    @abstractmethod
    async def delete(
        self, api: CountingApiClient, namespace: str, name: str, *, grace: int
    ) -> None:
        """Delete the object with a grace period of ``grace`` seconds (0: force deletion),
        hand it to the reaper (``provisioner.track_deletion``) and return once the kernel's
        container stopped (``provisioner.wait_kernel_stopped``).  Called by
        ``stop_kernel_objects`` after the launch Secret is deleted."""
