"""vSphere sessions for the vSphere provider: log in lazily, keep one session, log in again when it
expired, read properties through the PropertyCollector, and wait for tasks with a deadline.

Everything here blocks: it runs in the provider's worker threads, never on the event loop.
:func:`provider_error` is the one place where pyVmomi faults and connection errors become
:class:`ha.errors.ProviderError` (or :class:`ha.errors.NotSupported`).

Properties are always read through ``RetrievePropertiesEx`` with explicit paths, never through
pyVmomi's lazy attributes: reading an unset property lazily makes the vCenter simulator drop the
connection, and a task's whole ``info`` cannot be read when the simulator reports a snapshot as the
task's entity (pyVmomi raises a TypeError), so tasks are followed through ``info.state``,
``info.error`` and ``info.result`` only.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from xml.etree import ElementTree

import structlog

from checks.base import CheckFailed
from checks.database import read_secret
from ha.duration import format_duration
from ha.errors import NotSupported, ProviderError
from ha.lazy import LazyModule

connect: Any = LazyModule("pyVim.connect")
pyvmomi: Any = LazyModule("pyVmomi")
support: Any = LazyModule("pyVmomi.VmomiSupport")
vim: Any = LazyModule("pyVmomi", "vim")
vmodl: Any = LazyModule("pyVmomi", "vmodl")

if TYPE_CHECKING:
    from providers.vsphere import VsphereConfig

log = structlog.get_logger("providers.vsphere")

T = TypeVar("T")
IDLE_CHECK = 300.0  # a session unused this long is checked before it is used again
TASK_POLL_MAX = 1.0  # seconds between two reads of a task's state, at most


def _pc() -> Any:
    """The PropertyCollector's types (pyVmomi leaves them untyped)."""
    return vmodl.query.PropertyCollector


_CONNECTION_ERRORS = (OSError, http.client.HTTPException)


@dataclass
class Connection:
    """One logged-in session: the service content and a view of every VM in scope."""

    si: Any
    content: Any
    root: Any  # the datacenter, or the root folder when no datacenter is configured
    vms: Any  # ContainerView of every VM under root
    used: float  # monotonic time of the last successful call

    def managed(self, kind: Any, moid: str) -> Any:
        """A reference to the managed object ``moid`` of type ``kind`` on this session."""
        return kind(moid, self.si._stub)


class Session:
    """The provider's vSphere session, shared by its worker threads."""

    def __init__(self, config: VsphereConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._connection: Connection | None = None

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def call(self, what: str, action: Callable[[Connection], T], *, retry: bool) -> T:
        """Run ``action`` on a live session; every failure is a ProviderError saying ``what``.

        A session unused for a while is checked first, and renewed when it expired. When the
        server ends the session (NotAuthenticated) or the connection breaks (a restart, a stale
        keep-alive) during the action, it is run once more on a new session if ``retry`` says it
        is idempotent; otherwise the error is raised and the next call logs in again.
        """
        try:
            return self._call(action, retry)
        except ProviderError as exc:
            raise type(exc)(f"{what}: {exc}") from exc

    def _call(self, action: Callable[[Connection], T], retry: bool) -> T:
        attempt = 0
        while True:
            attempt += 1
            connection = self._connect()
            try:
                result = action(connection)
            except vmodl.MethodFault as exc:
                if not _session_lost(exc, connection):
                    raise self._error(exc) from exc
                self._forget(connection)
                if attempt > 1 or not retry:
                    message = f"{self.where} ended the session; the next call logs in again"
                    raise ProviderError(message) from exc
                log.info("vsphere session expired, logging in again", host=self.where)
            except _CONNECTION_ERRORS as exc:
                self._forget(connection)
                if attempt > 1 or not retry or isinstance(exc, ssl.SSLCertVerificationError):
                    raise self._error(exc) from exc
                log.info("vsphere connection lost, reconnecting", host=self.where, error=str(exc))
            else:
                connection.used = time.monotonic()
                return result

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            _log_out(connection.si)

    def _connect(self) -> Connection:
        with self._lock:
            connection = self._connection
            idle = connection is not None and time.monotonic() - connection.used > IDLE_CHECK
            if connection is not None and idle and not self._still_logged_in(connection):
                log.info("vsphere session expired while idle", host=self.where)
                connection.si._stub.DropConnections()
                connection = None
            if connection is None:
                connection = self._login()
                self._connection = connection
            return connection

    def _still_logged_in(self, connection: Connection) -> bool:
        try:
            props = read(connection, connection.content.sessionManager, ["currentSession"])
        except (vmodl.MethodFault, *_CONNECTION_ERRORS):
            return False
        return props.get("currentSession") is not None

    def _forget(self, connection: Connection) -> None:
        with self._lock:
            if self._connection is connection:
                self._connection = None
        connection.si._stub.DropConnections()

    def _login(self) -> Connection:
        config = self.config
        try:
            secret = read_secret(config.password_env, config.password_file)
        except CheckFailed as exc:
            raise ProviderError(f"password for {self.where}: {exc}") from None
        password = secret.get_secret_value() if secret is not None else ""
        context = _ssl_context(config)
        try:
            stub = pyvmomi.SoapStubAdapter(
                host=config.host,
                port=config.port,
                version=self._api_version(context),
                sslContext=context,
                httpConnectionTimeout=config.call_timeout,
            )
        except _CONNECTION_ERRORS as exc:
            raise self._error(exc) from exc
        si = vim.ServiceInstance("ServiceInstance", stub)
        try:
            content = si.RetrieveContent()
            content.sessionManager.Login(config.user, password, None)
        except (vmodl.MethodFault, *_CONNECTION_ERRORS) as exc:
            stub.DropConnections()
            error = str(self._error(exc, user=config.user))
            raise ProviderError(error.replace(password, "********") if password else error) from exc
        try:
            connection = self._open(si, content)
        except (vmodl.MethodFault, *_CONNECTION_ERRORS) as exc:
            _log_out(si)
            raise self._error(exc) from exc
        except ProviderError:
            _log_out(si)
            raise
        log.info("vsphere login", host=self.where, user=config.user)
        return connection

    def _api_version(self, context: ssl.SSLContext) -> str:
        """The newest API version that both pyVmomi and the server speak, as pyVmomi's
        SmartStubAdapter chooses it, but with a deadline: pyVmomi asks without one, so a vCenter
        that accepts the connection and answers nothing (hung, or a half-dead balancer) held
        the login, its thread and the session's lock for good, and every later call and the
        daemon's shutdown waited behind it."""
        config = self.config
        wire = http.client.HTTPSConnection(
            config.host, config.port, context=context, timeout=config.call_timeout
        )
        try:
            wire.request("GET", "/sdk/vimServiceVersions.xml")
            answer = wire.getresponse()
            body = answer.read()
        finally:
            wire.close()
        offered: set[str] = set()
        if answer.status == 200:
            with contextlib.suppress(ElementTree.ParseError):
                for namespace in ElementTree.fromstring(body).iter("namespace"):
                    offered.update(v.text or "" for v in namespace.iter("version"))
        for version in connect.GetServiceVersions("vim25"):
            if support.versionIdMap[version] in offered:
                return str(version)
        raise ProviderError(f"{self.where} is not a vSphere API server, or none pyVmomi speaks")

    def _error(self, exc: BaseException, user: str = "") -> ProviderError:
        return provider_error(exc, self.where, user=user, timeout=self.config.call_timeout)

    def _open(self, si: Any, content: Any) -> Connection:
        root = content.rootFolder
        if self.config.datacenter is not None:
            found = content.searchIndex.FindByInventoryPath(self.config.datacenter)
            if not isinstance(found, vim.Datacenter):
                raise ProviderError(
                    f"no datacenter named {self.config.datacenter!r} at {self.where}"
                )
            root = found
        vms = content.viewManager.CreateContainerView(root, [vim.VirtualMachine], True)
        return Connection(si=si, content=content, root=root, vms=vms, used=time.monotonic())


def _session_lost(fault: Any, connection: Connection) -> bool:
    """The server forgot our session: NotAuthenticated, or (vcsim) our session's view is gone."""
    if isinstance(fault, vim.fault.NotAuthenticated):
        return True
    gone = (
        getattr(fault, "obj", None)
        if isinstance(fault, vmodl.fault.ManagedObjectNotFound)
        else None
    )
    return gone is not None and gone._moId == connection.vms._moId


def _log_out(si: Any) -> None:
    """Best effort: a session that cannot log out expires on the server by itself."""
    try:
        si.content.sessionManager.Logout()
    except (vmodl.MethodFault, *_CONNECTION_ERRORS):
        pass
    finally:
        si._stub.DropConnections()


def _ssl_context(config: VsphereConfig) -> ssl.SSLContext:
    """Verification on unless ``insecure``; our own context, so pyVmomi never skips it itself."""
    if config.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = str(config.ca_file) if config.ca_file is not None else None
    return ssl.create_default_context(cafile=cafile)


def read(connection: Connection, obj: Any, paths: list[str]) -> dict[str, Any]:
    """The set properties among ``paths`` of one managed object (unset ones are left out)."""
    spec = _pc().FilterSpec(
        objectSet=[_pc().ObjectSpec(obj=obj, skip=False)],
        propSet=[_pc().PropertySpec(type=type(obj), pathSet=paths, all=False)],
    )
    result = connection.content.propertyCollector.RetrievePropertiesEx(
        [spec], _pc().RetrieveOptions()
    )
    if result is None or not result.objects:
        return {}
    return {prop.name: prop.val for prop in result.objects[0].propSet}


def read_all(
    connection: Connection, view: Any, kind: Any, paths: list[str]
) -> list[tuple[Any, dict[str, Any]]]:
    """``paths`` of every object of type ``kind`` in a container view, in one paged query."""
    traverse = _pc().TraversalSpec(
        name="view", type=vim.view.ContainerView, path="view", skip=False
    )
    spec = _pc().FilterSpec(
        objectSet=[_pc().ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
        propSet=[_pc().PropertySpec(type=kind, pathSet=paths, all=False)],
    )
    collector = connection.content.propertyCollector
    result = collector.RetrievePropertiesEx([spec], _pc().RetrieveOptions())
    found: list[tuple[Any, dict[str, Any]]] = []
    while result is not None:
        found += [(o.obj, {p.name: p.val for p in o.propSet}) for o in result.objects]
        result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
    return found


def wait_for_task(connection: Connection, task: Any, timeout: float) -> Any:
    """Wait until ``task`` ends; return its result, or raise with the task's own error message."""
    give_up = time.monotonic() + timeout
    pause = 0.05
    while True:
        info = read(connection, task, ["info.state", "info.error", "info.result"])
        state = info.get("info.state")
        if state == vim.TaskInfo.State.success:
            return info.get("info.result")
        if state == vim.TaskInfo.State.error:
            fault = info.get("info.error")
            if fault is None:
                raise ProviderError("the task failed without saying why")
            raise provider_error(fault)
        if time.monotonic() + pause > give_up:
            raise ProviderError(
                f"task {task._moId} still {state} after {format_duration(timeout)}"
                " (it may still finish)"
            )
        time.sleep(pause)
        pause = min(pause * 2, TASK_POLL_MAX)


def type_name(value: Any) -> str:
    """The vSphere API name of a fault or managed object type (``InvalidPowerState``)."""
    return str(getattr(value, "_wsdlName", type(value).__name__))


def provider_error(
    exc: BaseException, where: str = "", user: str = "", timeout: float = 0.0
) -> ProviderError:
    """The one mapping of pyVmomi faults and connection errors into our exception tree."""
    if isinstance(exc, vim.fault.InvalidLogin):
        return ProviderError(f"{where} refused the login of user {user!r}")
    if isinstance(exc, vmodl.fault.ManagedObjectNotFound):
        return ProviderError("the object no longer exists")
    if isinstance(exc, vmodl.MethodFault):
        message = str(getattr(exc, "msg", "") or "").strip()
        name = type_name(exc)
        text = f"{name}: {message}" if message and message != name else name
        return (
            NotSupported(text)
            if isinstance(
                exc,
                (vmodl.fault.NotSupported, vmodl.fault.MethodNotFound, vim.fault.RestrictedVersion),
            )
            else ProviderError(text)
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProviderError(
            f"TLS certificate of {where} not trusted ({exc.verify_message}); "
            "give its CA in ca_file, or set insecure: true on a lab"
        )
    if isinstance(exc, TimeoutError):
        return ProviderError(f"{where} did not answer within {format_duration(timeout)}")
    if isinstance(exc, OSError):
        return ProviderError(f"cannot reach {where}: {exc.strerror or exc}")
    return ProviderError(f"{where}: {type(exc).__name__}: {exc}")
