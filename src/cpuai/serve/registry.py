"""The models a server holds: from one package or a repository ``repo/<name>/<version>/``.

The newest version of each model is loaded (the Triton/OVMS "latest" policy); ``load``/``unload``
back the v2 repository extension, and ``poll`` loads a newer version when one appears, switches
new requests to it, then drains and closes the old one, so no request in flight is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from cpuai import package as pkgmod
from cpuai.errors import CpuaiError, ModelError
from cpuai.serve.budget import plan
from cpuai.serve.errors import NotFound, NotReady
from cpuai.serve.model import ServedModel, Shared

log = logging.getLogger("cpuai.serve")


class Registry:
    """Served models by name; each name maps to the one loaded version."""

    def __init__(self, source: str | Path, shared: Shared, *, allow_empty: bool = False) -> None:
        self.source = Path(source)
        self.shared = shared
        self.models: dict[str, ServedModel] = {}
        self.failed: dict[str, str] = {}
        self.single: pkgmod.ModelPackage | None = None
        self.repository: pkgmod.Repository | None = None
        self._only: str | None = None
        self.unloaded: set[str] = set()
        self._lock = asyncio.Lock()
        self._allow_empty = allow_empty
        self._discover()

    def _discover(self) -> None:
        if not self.source.exists():
            raise ModelError(
                f"{self.source} does not exist", fix="point cpuai serve at a model package or repository"
            )
        if (self.source / pkgmod.MANIFEST).exists():
            self.single = pkgmod.read(self.source)
            return
        if pkgmod.Repository(self.source.parent).versions(self.source.name):  # repo/<name>
            self.repository, self._only = pkgmod.Repository(self.source.parent), self.source.name
            return
        repo = pkgmod.Repository(self.source)
        if not repo.names() and not self._allow_empty:
            raise ModelError(
                f"{self.source} holds no model package and no repo/<name>/<version>/ directories",
                fix="point at a package made by cpuai, or a repository of them",
            )
        self.repository = repo

    # -- what is on disk -------------------------------------------------------------------------
    def names(self) -> list[str]:
        if self.single is not None:
            return [self.single.manifest.name]
        assert self.repository is not None
        return [self._only] if self._only else self.repository.names()

    def versions(self, name: str) -> list[int]:
        if self.single is not None:
            return [self.single.manifest.version] if name == self.single.manifest.name else []
        assert self.repository is not None
        if self._only and name != self._only:
            return []
        return self.repository.versions(name)

    def _package(self, name: str, version: int | None) -> pkgmod.ModelPackage:
        if self.single is not None:
            if name != self.single.manifest.name:
                raise self._unknown(name)
            return pkgmod.read(self.source)
        assert self.repository is not None
        if not self.versions(name):
            raise self._unknown(name)
        pkg = self.repository.read(name, version)
        if pkg.manifest.name != name or pkg.manifest.version != int(pkg.path.name):
            pkg = pkgmod.ModelPackage(
                pkg.path, pkg.manifest.model_copy(update={"name": name, "version": int(pkg.path.name)})
            )
        return pkg

    def _unknown(self, name: str) -> NotFound:
        known = ", ".join(self.names()) or "none"
        return NotFound(
            f"model '{name}' is not served here (models: {known})", fix="use GET /v2/repository/index"
        )

    # -- serving ---------------------------------------------------------------------------------
    def get(self, name: str, version: str | int | None = None) -> ServedModel:
        """The loaded model ``name`` (optionally exactly ``version``); NotFound / NotReady otherwise."""
        model = self.models.get(name)
        if model is None:
            if name in self.failed:
                raise NotReady(
                    f"model '{name}' failed to load: {self.failed[name]}", fix="fix the package and load it"
                )
            if self.versions(name):
                raise NotReady(f"model '{name}' is not loaded", fix=f"POST /v2/repository/models/{name}/load")
            raise self._unknown(name)
        if version is not None:
            try:
                wanted = int(version)
            except (TypeError, ValueError):
                raise NotFound(
                    f"version {version!r} of model '{name}' is not a number",
                    fix=f"use a version number (loaded: {model.version})",
                ) from None
            if wanted != model.version:
                on_disk = self.versions(name)
                where = "exists but is not loaded" if wanted in on_disk else "does not exist"
                raise NotFound(
                    f"version {wanted} of model '{name}' {where} (loaded: {model.version}, "
                    f"on disk: {on_disk})",
                    fix=f"ask for version {model.version} or leave the version out",
                )
        return model

    def only(self) -> ServedModel:
        """The one model of a one-model server (for ``/service``)."""
        if len(self.models) != 1:
            raise NotFound(
                f"/service needs a server with exactly one model; this one has {len(self.models)}",
                fix="call /v1/models/{name}/predict instead",
            )
        return next(iter(self.models.values()))

    async def load(self, name: str, version: int | None = None) -> ServedModel:
        """Load (or reload) ``name``; the previous version keeps serving until the new one is ready."""
        async with self._lock:
            package = self._package(name, version)
            shared = self.shared
            cfg = shared.config
            engine_plan = plan(
                shared.budget,
                package.manifest.deploy,
                instances=cfg.instances,
                threads=cfg.threads,
                streams=cfg.streams,
                backend=cfg.backend,
                split=cfg.split,
            )
            model = ServedModel(package, engine_plan, shared)
            try:
                await asyncio.get_running_loop().run_in_executor(None, model.load)
            except CpuaiError as err:
                self.failed[name] = str(err)
                log.error("model %s v%s failed to load: %s", name, package.manifest.version, err)
                raise
            except Exception as err:
                self.failed[name] = f"{type(err).__name__}: {err}"
                log.exception("model %s failed to load", name)
                raise ModelError(
                    f"model '{name}' failed to load: {type(err).__name__}: {err}",
                    fix="check the package (cpuai bench it) and the handler",
                ) from None
            self.failed.pop(name, None)
            self.unloaded.discard(name)
            old = self.models.get(name)
            self.models[name] = model
            shared.metrics.ready.labels(name, str(model.version)).set(1)
            split = (
                f"; under load {len(model.split_engines)} engine(s) x {engine_plan.split_threads} thread(s)"
                if model.split_engines
                else ""
            )
            log.info(
                "model %s v%d ready (%s, %d instance(s) x %d thread(s) x %d stream(s)%s, plan from %s)",
                name,
                model.version,
                model.platform,
                engine_plan.instances,
                engine_plan.threads,
                engine_plan.streams,
                split,
                engine_plan.source,
            )
        if old is not None:
            await self._retire(old)
        return model

    async def _retire(self, model: ServedModel) -> None:
        self.shared.metrics.ready.labels(model.name, str(model.version)).set(0)
        await model.close(drain=True)
        log.info("model %s v%d unloaded", model.name, model.version)

    async def unload(self, name: str) -> None:
        async with self._lock:
            self.unloaded.add(name)
            model = self.models.pop(name, None)
            if model is None:
                if self.versions(name):
                    return
                raise self._unknown(name)
        await self._retire(model)

    async def load_all(self) -> None:
        for name in self.names():
            try:
                await self.load(name)
            except CpuaiError:
                if self.single is not None:
                    raise

    async def poll(self) -> None:
        """Load a newer version of any served model (hot reload); new model names are loaded too."""
        if self.repository is None:
            return
        for name in self.names():
            versions = self.versions(name)
            current = self.models.get(name)
            if not versions or name in self.failed or name in self.unloaded:
                continue
            if current is None or versions[-1] > current.version:
                log.info("new version %d of %s found; loading", versions[-1], name)
                with contextlib.suppress(CpuaiError):
                    await self.load(name)

    async def close(self) -> None:
        models, self.models = list(self.models.values()), {}
        await asyncio.gather(*(self._retire(m) for m in models))

    def index(self) -> list[dict[str, Any]]:
        """The v2 repository index: every model version on disk with its state."""
        rows = []
        for name in self.names():
            loaded = self.models.get(name)
            for v in self.versions(name):
                if loaded is not None and loaded.version == v:
                    state, reason = loaded.state, loaded.reason
                elif name in self.failed and v == self.versions(name)[-1]:
                    state, reason = "UNAVAILABLE", self.failed[name]
                else:
                    state, reason = "UNAVAILABLE", "not loaded"
                rows.append({"name": name, "version": str(v), "state": state, "reason": reason})
        return rows
