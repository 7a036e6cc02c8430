"""TensorStore datacube store: N samples of [variable, time, level, lat, lon] cubes, resumable.

Layout under the store URL (a local path or any TensorStore kvstore URL: ``file://``,
``memory://``, ``gs://``, ``s3://``)::

    astrojax.json     the metadata document (JSON): format version, variables and their units,
                      grid shape, coordinates and their units, attributes (source, Conventions,
                      history, ...), label names, statistics of all samples once computed
                      (descriptive: training normalizes with its train split's own, see
                      compute_stats)
    cubes/            zarr v3 array [N, V, T, L, Y, X] float32, dimension_names (sample,
                      variable, time, level, lat, lon), fill value NaN; one chunk per (sample,
                      variable) = [1, 1, T, L, Y, X], zstd with its content checksum; chunk keys
                      use zarr v3's default encoding: cubes/c/<sample>/<variable>/0/0/0/0
    labels/           zarr v3 array [N, K] float64 of per-sample scalars (only when K > 0),
                      one chunk per sample
    complete/<i>      empty marker, written after sample i's data and labels

Why this shape: one TensorStore read of ``cubes[i]`` fetches a whole sample (V chunk reads in
parallel); a chunk per variable lets a corrupt chunk be traced to its variable; zstd's checksum
turns a flipped byte into a decode error instead of wrong numbers.

Atomicity and resume: a sample counts as written only once its marker exists, and the marker
is written only after the sample's data and labels have been committed; rewriting a sample
deletes its marker first. Every key a sample's write touches belongs to that sample alone, so
builders working on disjoint samples never race, and an interrupted build is resumed by
writing ``missing()`` again (:func:`build_store`). ``astrojax.json`` is written last when a
store is created, so a store whose creation was interrupted is simply absent.

The metadata lives in its own key rather than in zarr attributes: TensorStore's zarr3 driver
writes ``attributes`` when an array is created but cannot update them (reopening with other
attributes is a metadata mismatch), and statistics arrive after the data.
"""

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorstore as ts

FORMAT = "astrojax-cube-store"
FORMAT_VERSION = 1
METADATA_KEY = "astrojax.json"
AXES = ("time", "level", "lat", "lon")
DIMENSION_NAMES = ("sample", "variable", *AXES)
_OWN_PREFIXES = ("cubes/", "labels/", "complete/")
_CONTEXTS: dict[int, ts.Context] = {}


class StoreError(Exception):
    """A cube store is missing, inconsistent, incomplete or corrupt; the message names it."""


def _context() -> ts.Context:
    """One TensorStore context per process, so that ``memory://`` stores outlive a handle.

    Keyed by pid: a forked worker must not reuse its parent's context (and its threads).
    """
    pid = os.getpid()
    if pid not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[pid] = ts.Context()
    return _CONTEXTS[pid]


def _normalize_url(url: str) -> str:
    url = os.fspath(url)
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    return url


def store_spec(url: str) -> dict:
    """The TensorStore kvstore spec (JSON) of a store's root: a path or kvstore URL."""
    url = _normalize_url(url)
    if "://" not in url:
        spec = {"driver": "file", "path": url}
    else:
        try:
            spec = ts.KvStore.Spec(url).to_json()
        except ValueError as err:
            raise StoreError(f"not a TensorStore kvstore URL: {url!r} ({err})") from None
    if spec.get("path") and not spec["path"].endswith("/"):
        spec["path"] += "/"
    return spec


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in JSON metadata")


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))


@dataclasses.dataclass(frozen=True)
class CubeSchema:
    """What every sample of a store looks like: variables x (time, level, lat, lon) and labels."""

    variables: tuple[str, ...]
    shape: tuple[int, int, int, int]  # (T, L, Y, X)
    units: dict[str, str]
    coords: dict[str, list[float]]
    coord_units: dict[str, str]
    attrs: dict
    label_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "label_names", tuple(self.label_names))
        coords = {k: [float(x) for x in np.asarray(v).ravel()] for k, v in self.coords.items()}
        object.__setattr__(self, "coords", coords)
        if not self.variables or len(set(self.variables)) != len(self.variables):
            raise StoreError(f"schema variables must be unique and non-empty: {self.variables}")
        if len(self.shape) != 4 or min(self.shape) < 1:
            raise StoreError(f"schema shape must be 4 positive sizes (T, L, Y, X): {self.shape}")
        if len(set(self.label_names)) != len(self.label_names):
            raise StoreError(f"schema label_names must be unique: {self.label_names}")
        for axis, size in zip(AXES, self.shape, strict=True):
            if axis in coords and len(coords[axis]) != size:
                raise StoreError(f"schema coordinate {axis!r} has {len(coords[axis])} values, "
                                 f"but the {axis} axis has {size}")

    def to_dict(self) -> dict:
        return _json_round_trip(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "CubeSchema":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def cube_shape(self) -> tuple[int, ...]:
        return (len(self.variables), *self.shape)


@dataclasses.dataclass
class CubeStats:
    """Normalization statistics per (variable, level): mean and std over samples, T, Y, X."""

    variables: tuple[str, ...]
    mean: np.ndarray  # [V, L] float64
    std: np.ndarray  # [V, L] float64
    count: int  # values behind each (variable, level) entry

    def to_dict(self) -> dict:
        return {"variables": list(self.variables), "mean": np.asarray(self.mean).tolist(),
                "std": np.asarray(self.std).tolist(), "count": int(self.count)}

    @classmethod
    def from_dict(cls, data: dict) -> "CubeStats":
        return cls(tuple(data["variables"]), np.asarray(data["mean"], np.float64),
                   np.asarray(data["std"], np.float64), int(data["count"]))


def _zarr_spec(kvstore: dict, shape: Sequence[int], chunks: Sequence[int], dtype: str,
               names: Sequence[str]) -> dict:
    return {"driver": "zarr3", "kvstore": kvstore, "metadata": {
        "shape": list(shape), "data_type": dtype, "fill_value": "NaN",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "zstd", "configuration": {"level": 3, "checksum": True}}],
        "dimension_names": list(names)}}


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


class CubeStore:
    """A datacube store; see the module docstring for its layout. Pickles as its URL."""

    def __init__(self, url: str, read_only: bool = True):
        """Use :meth:`create` or :meth:`open`; this only records where the store is."""
        self._url = _normalize_url(url)
        self._read_only = read_only
        self._root: ts.KvStore | None = None
        self._meta: dict | None = None
        self._cubes: ts.TensorStore | None = None
        self._labels: ts.TensorStore | None = None
        self._completed: set[int] = set()

    def __reduce__(self):
        return (CubeStore, (self._url, self._read_only))

    def __repr__(self) -> str:
        return f"CubeStore({self._url!r}, read_only={self._read_only})"

    # ---- opening and creating
    @classmethod
    def create(cls, url: str, schema: CubeSchema, num_samples: int, *,
               overwrite: bool = False) -> "CubeStore":
        """A new, empty store of ``num_samples`` samples; refuses an existing store unless
        ``overwrite``, which deletes the store's own keys (nothing else under ``url``)."""
        if not isinstance(num_samples, int | np.integer) or num_samples < 1:
            raise StoreError(f"num_samples must be a positive integer, got {num_samples!r}")
        store = cls(url, read_only=False)
        root = store._kvstore()
        if root.read(METADATA_KEY).result().state == "value":
            if not overwrite:
                raise StoreError(f"a cube store already exists at {store.url}; open it, or "
                                 "create it with overwrite=True")
            root.write(METADATA_KEY, None).result()
        # Without astrojax.json anything under our prefixes is left over from an interrupted
        # creation (or the store just deleted), never data of a complete store.
        for prefix in _OWN_PREFIXES:
            root.delete_range(ts.KvStore.KeyRange(prefix, prefix[:-1] + "0")).result()
        n, k = int(num_samples), len(schema.label_names)
        open_kw = dict(create=True, delete_existing=True, context=_context())
        ts.open(_zarr_spec((root / "cubes/").spec().to_json(), (n, *schema.cube_shape()),
                           (1, 1, *schema.shape), "float32", DIMENSION_NAMES), **open_kw).result()
        if k:
            ts.open(_zarr_spec((root / "labels/").spec().to_json(), (n, k), (1, k), "float64",
                               ("sample", "label")), **open_kw).result()
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "num_samples": n,
                **schema.to_dict(), "stats": None}
        store._write_metadata(meta)
        return store

    @classmethod
    def open(cls, url: str, *, read_only: bool = True) -> "CubeStore":
        """An existing store; its arrays are opened with read-only intent unless asked."""
        store = cls(url, read_only=read_only)
        store._arrays()  # fail here, naming the URL, rather than at the first read
        return store

    def _kvstore(self) -> ts.KvStore:
        if self._root is None:
            self._root = ts.KvStore.open(store_spec(self._url), context=_context()).result()
        return self._root

    def _metadata(self) -> dict:
        if self._meta is None:
            result = self._kvstore().read(METADATA_KEY).result()
            if result.state != "value":
                raise StoreError(f"no cube store at {self._url} ({METADATA_KEY} is missing)")
            try:
                meta = json.loads(bytes(result.value))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
                if meta.get("format_version", 0) > FORMAT_VERSION:
                    raise ValueError(f"format version {meta['format_version']} is newer than "
                                     f"this astrojax reads ({FORMAT_VERSION})")
                CubeSchema.from_dict(meta)
            except (ValueError, KeyError, TypeError, StoreError) as err:
                raise StoreError(f"unreadable metadata {METADATA_KEY} in {self._url}: "
                                 f"{_first_line(err)}") from None
            self._meta = meta
        return self._meta

    def _write_metadata(self, meta: dict) -> None:
        data = json.dumps(meta, indent=1, default=_json_default).encode()
        self._kvstore().write(METADATA_KEY, data).result()
        self._meta = json.loads(data)

    def _arrays(self) -> tuple[ts.TensorStore, ts.TensorStore | None]:
        if self._cubes is None:
            meta = self._metadata()
            mode = dict(read=True, write=not self._read_only, context=_context())
            try:
                # Chunks equal to the fill value (all NaN) are written too: then a chunk that
                # is absent was lost, and reading it is an error (_check_chunks_exist).
                cubes = ts.open({"driver": "zarr3", "kvstore": (self._kvstore() / "cubes/")
                                 .spec().to_json(), "store_data_equal_to_fill_value": True},
                                **mode).result()
                labels = None
                if meta["label_names"]:
                    labels = ts.open({"driver": "zarr3", "kvstore": (self._kvstore() /
                                      "labels/").spec().to_json()}, **mode).result()
            except ValueError as err:
                raise StoreError(f"cannot open the arrays of {self._url}: "
                                 f"{_first_line(err)}") from None
            expected = (meta["num_samples"], len(meta["variables"]), *meta["shape"])
            if tuple(cubes.shape) != expected:
                raise StoreError(f"{self._url}: cubes array has shape {tuple(cubes.shape)}, "
                                 f"the metadata says {expected}")
            self._cubes, self._labels = cubes, labels
        return self._cubes, self._labels

    # ---- description
    @property
    def url(self) -> str:
        return self._url

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def schema(self) -> CubeSchema:
        return CubeSchema.from_dict(self._metadata())

    @property
    def num_samples(self) -> int:
        return int(self._metadata()["num_samples"])

    @property
    def stats(self) -> CubeStats | None:
        stats = self._metadata()["stats"]
        return None if stats is None else CubeStats.from_dict(stats)

    def set_stats(self, stats: CubeStats) -> None:
        """Saves normalization statistics into the metadata document."""
        self._check_writable("write statistics")
        schema = self.schema
        expected = (len(schema.variables), schema.shape[1])
        if tuple(stats.variables) != schema.variables or np.shape(stats.mean) != expected \
                or np.shape(stats.std) != expected:
            raise StoreError(f"statistics for {tuple(stats.variables)} with shape "
                             f"{np.shape(stats.mean)} do not fit {self._url}: variables "
                             f"{schema.variables}, (V, L) = {expected}")
        self._meta = None  # re-read: another process may have changed it
        meta = dict(self._metadata(), stats=stats.to_dict())
        self._write_metadata(meta)

    def _check_writable(self, what: str) -> None:
        if self._read_only:
            raise StoreError(f"cannot {what}: {self._url} was opened read-only "
                             "(CubeStore.open(url, read_only=False) to write)")

    # ---- writing
    def write_sample(self, index: int, cube: np.ndarray, labels: np.ndarray | None = None):
        """Writes sample ``index``: data, then labels, then its completion marker."""
        labels = None if labels is None else np.asarray(labels)[None]
        self.write_samples(np.array([index]), np.asarray(cube)[None], labels)

    def write_samples(self, indices: np.ndarray, cubes: np.ndarray,
                      labels: np.ndarray | None = None) -> None:
        """Writes several samples at once ([n, V, T, L, Y, X] and [n, K]), each atomically."""
        self._check_writable("write samples")
        indices = np.asarray(indices).reshape(-1)
        schema, n = self.schema, len(self._metadata()["label_names"])
        cubes, labels = self._validate(indices, np.asarray(cubes), labels, schema, n)
        root, (cube_array, label_array) = self._kvstore(), self._arrays()
        self._completed.difference_update(indices.tolist())
        _wait([root.write(_marker(i), None) for i in indices])
        _wait([cube_array[int(i)].write(cube) for i, cube in zip(indices, cubes, strict=True)])
        if label_array is not None:
            _wait([label_array[int(i)].write(row) for i, row in zip(indices, labels, strict=True)])
        _wait([root.write(_marker(i), b"") for i in indices])
        self._completed.update(indices.tolist())

    def _validate(self, indices, cubes, labels, schema, num_labels):
        if not np.issubdtype(indices.dtype, np.integer):
            raise StoreError(f"sample indices must be integers, got {indices.dtype}")
        for i in indices:
            if not 0 <= i < self.num_samples:
                raise IndexError(f"sample index {i} out of range for {self._url} "
                                 f"({self.num_samples} samples)")
        what = _samples_text(indices)
        expected = (len(indices), *schema.cube_shape())
        if cubes.shape != expected:
            raise StoreError(f"{what}: cube shape {cubes.shape[1:]} does not match the store "
                             f"{self._url}: (V, T, L, Y, X) = {expected[1:]}")
        if not np.issubdtype(cubes.dtype, np.floating):
            raise StoreError(f"{what}: cube dtype {cubes.dtype} is not floating point")
        if num_labels == 0:
            if labels is not None and np.size(labels):
                raise StoreError(f"{what}: the store {self._url} has no labels")
            return cubes.astype(np.float32, copy=False), None
        if labels is None:
            raise StoreError(f"{what}: missing labels {schema.label_names}")
        labels = np.asarray(labels)
        if labels.shape != (len(indices), num_labels) or not np.issubdtype(labels.dtype,
                                                                            np.number):
            raise StoreError(f"{what}: labels of shape {labels.shape[1:]} dtype {labels.dtype}"
                             f" do not match {schema.label_names}")
        return cubes.astype(np.float32, copy=False), labels.astype(np.float64, copy=False)

    # ---- completion
    def complete(self) -> np.ndarray:
        """[N] bool: which samples have been completely written."""
        done = np.zeros(self.num_samples, bool)
        for key in (self._kvstore() / "complete/").list().result():
            text = bytes(key).decode()
            if text.isdigit() and int(text) < len(done):
                done[int(text)] = True
        self._completed = set(np.flatnonzero(done).tolist())
        return done

    def missing(self) -> np.ndarray:
        """Indices of the samples not (completely) written yet, ascending."""
        return np.flatnonzero(~self.complete())

    def _check_complete(self, indices: np.ndarray) -> None:
        """Completion is looked up once per sample per handle: one listing for many samples,
        one marker read for a few."""
        unknown = [int(i) for i in indices if int(i) not in self._completed]
        if len(unknown) > 8:
            self.complete()
            unknown = [i for i in unknown if i not in self._completed]
        for i in unknown:
            if self._kvstore().read(_marker(i)).result().state != "value":
                raise StoreError(f"sample {i} of {self._url} was never completely written "
                                 "(interrupted build? rerun it to resume)")
            self._completed.add(i)

    # ---- reading
    def _variable_indices(self, variables: Sequence[str] | None) -> list[int]:
        names = self._metadata()["variables"]
        if variables is None:
            return list(range(len(names)))
        if isinstance(variables, str):
            variables = [variables]
        unknown = [v for v in variables if v not in names]
        if unknown:
            raise StoreError(f"unknown variable {', '.join(map(repr, unknown))} in {self._url}; "
                             f"it has {', '.join(names)}")
        return [names.index(v) for v in variables]

    def read_sample(self, index: int, variables: Sequence[str] | None = None) -> np.ndarray:
        """Sample ``index`` as float32 [V', T, L, Y, X] (all variables, or those named)."""
        return self.read_samples([index], variables)[0]

    def read_samples(self, indices: Sequence[int],
                     variables: Sequence[str] | None = None) -> np.ndarray:
        """Several samples, read concurrently: float32 [n, V', T, L, Y, X]."""
        var_idx = self._variable_indices(variables)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = self.num_samples
        for i in indices:
            if not 0 <= i < n:
                raise IndexError(f"sample index {i} out of range for {self._url} ({n} samples)")
        self._check_complete(indices)
        cubes, _ = self._arrays()
        if var_idx == list(range(cubes.shape[1])):
            views = [cubes[int(i)] for i in indices]
        else:
            views = [cubes[int(i), var_idx] for i in indices]
        futures = [view.read() for view in views]
        out = []
        for i, future in zip(indices, futures, strict=True):
            try:
                out.append(future.result())
            except ValueError as err:
                raise self._locate_corruption(int(i), var_idx, err) from err
            self._check_chunks_exist(int(i), var_idx, out[-1])
        return np.stack(out) if out else np.zeros((0, len(var_idx), *cubes.shape[2:]), "f4")

    def _check_chunks_exist(self, index: int, var_idx: list[int], cube: np.ndarray) -> None:
        """A chunk file that is gone reads as its fill value (NaN) without an error: a variable
        that is all NaN is looked up, and a missing chunk is an error naming it, never NaN fed
        to a model. (A complete sample's chunks were all written before its marker.)"""
        names = self._metadata()["variables"]
        for v, values in zip(var_idx, cube, strict=True):
            if not np.isnan(values).all():
                continue
            key = f"cubes/c/{index}/{v}/0/0/0/0"
            if self._kvstore().read(key).result().state != "value":
                raise StoreError(f"sample {index} of {self._url}: variable {names[v]!r} has no "
                                 f"data (chunk {key} is missing); rebuild or re-ingest the "
                                 "store")

    def _locate_corruption(self, index: int, var_idx: list[int], err: Exception) -> StoreError:
        names, cubes = self._metadata()["variables"], self._arrays()[0]
        bad = []
        for v in var_idx:
            try:
                cubes[index, v].read().result()
            except ValueError as var_err:
                bad.append(f"variable {names[v]!r} (chunk cubes/c/{index}/{v}/0/0/0/0: "
                           f"{_first_line(var_err)})")
        where = "; ".join(bad) if bad else _first_line(err)
        return StoreError(f"sample {index} of {self._url} cannot be decoded: {where}")

    def read_labels(self) -> np.ndarray:
        """[N, K] float64 per-sample labels (NaN where a sample was not written)."""
        _, labels = self._arrays()
        if labels is None:
            return np.zeros((self.num_samples, 0), np.float64)
        return labels.read().result()


def _marker(index: int) -> str:
    return f"complete/{int(index)}"


def _wait(futures: list) -> None:
    for future in futures:
        future.result()


def _samples_text(indices: np.ndarray) -> str:
    if len(indices) == 1:
        return f"sample {int(indices[0])}"
    return f"samples {int(indices[0])}..{int(indices[-1])}"


def _schema_difference(old: CubeSchema, new: CubeSchema) -> str | None:
    a, b = old.to_dict(), new.to_dict()
    for field in a:
        old_text = json.dumps(a[field], sort_keys=True)
        new_text = json.dumps(b[field], sort_keys=True)
        if old_text != new_text:
            return f"{field} differs: stored {_short(old_text)}, requested {_short(new_text)}"
    return None


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def build_store(url: str, schema: CubeSchema, num_samples: int,
                make_sample: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]], *,
                chunk: int = 64, progress: bool = True) -> CubeStore:
    """Creates (or reopens) a store and writes its missing samples, ``chunk`` at a time.

    ``make_sample(indices)`` returns ``(cubes [n, V, T, L, Y, X], labels [n, K] or None)``.
    Rerunning after an interruption writes only what is missing; an existing store whose
    schema or size differs is refused with the differing field named.
    """
    from tqdm.auto import tqdm

    probe = CubeStore(url, read_only=False)
    if probe._kvstore().read(METADATA_KEY).result().state == "value":
        store = CubeStore.open(url, read_only=False)
        difference = _schema_difference(store.schema, schema)
        if store.num_samples != num_samples:
            difference = f"num_samples differs: stored {store.num_samples}, requested " \
                         f"{num_samples}"
        if difference:
            raise StoreError(f"the existing store at {store.url} does not match: {difference}"
                             " (use another path, or delete it)")
    else:
        store = CubeStore.create(url, schema, num_samples)
    todo = store.missing()
    with tqdm(total=num_samples, initial=num_samples - len(todo), unit="sample",
              desc="writing cubes", disable=not progress) as bar:
        for start in range(0, len(todo), chunk):
            indices = todo[start:start + chunk]
            cubes, labels = make_sample(indices)
            store.write_samples(indices, cubes, labels)
            bar.update(len(indices))
    return store


def compute_stats(store: CubeStore, indices: Sequence[int] | None = None, *, batch: int = 32,
                  progress: bool = False) -> CubeStats:
    """Mean and std per (variable, level) over the samples ``indices`` (default: all) in one
    streaming pass, float64 throughout.

    Training normalizes with the statistics of its train split only (``tasks/datacube.py``),
    so nothing about held-out samples reaches the model; the store's own ``stats`` (all
    samples) describe the data. Per-sample moments are merged with Chan et al.'s parallel
    update. NaN or Inf anywhere raises StoreError listing the (sample, variable) pairs where
    they were found.
    """
    from tqdm.auto import tqdm

    schema = store.schema
    variables, num_levels = schema.variables, schema.shape[1]
    count = 0
    mean = np.zeros((len(variables), num_levels))
    m2 = np.zeros_like(mean)
    bad: list[tuple[int, str]] = []
    order = (np.arange(store.num_samples) if indices is None
             else np.asarray(indices, np.int64).reshape(-1))
    if order.size == 0:
        raise StoreError(f"{store.url}: statistics need at least one sample")
    for start in tqdm(range(0, len(order), batch), desc="statistics", unit="batch",
                      disable=not progress):
        indices = order[start:start + batch]
        x = store.read_samples(indices).astype(np.float64)  # [b, V, T, L, Y, X]
        finite = np.isfinite(x).all(axis=(2, 3, 4, 5))  # [b, V]
        for i, v in zip(*np.nonzero(~finite), strict=True):
            bad.append((int(indices[i]), variables[v]))
        if bad:
            continue
        n_b = x.shape[2] * x.shape[4] * x.shape[5]
        mean_s = x.mean(axis=(2, 4, 5))  # [b, V, L]
        m2_s = ((x - mean_s[:, :, None, :, None, None]) ** 2).sum(axis=(2, 4, 5))
        for mean_b, m2_b in zip(mean_s, m2_s, strict=True):
            total = count + n_b
            delta = mean_b - mean
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
    if bad:
        shown = ", ".join(f"(sample {i}, {v!r})" for i, v in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise StoreError(f"{store.url}: NaN or Inf in {len(bad)} (sample, variable) pair(s): "
                         f"{shown}{more}; missing values (e.g. a netCDF _FillValue) must be "
                         "filled or the samples dropped before statistics")
    return CubeStats(variables, mean, np.sqrt(m2 / count), count)
