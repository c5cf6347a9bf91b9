"""Launch plans: a CUDA launcher's configuration already seen replays its recorded launches.

A launcher decorated with :func:`planned` records, on the first call of a configuration, the
launches :func:`record` is told of (``_kernels._launch`` tells it of each), and replays them with
the arrays of a later call with the same configuration, skipping the launcher's Python work.
Imported only for CuPy input.
"""

import collections
import functools
import threading

import cupy

#: Launch plans kept (one per configuration seen), the least recently used dropped first.
PLAN_CACHE_SIZE = 256
cache: collections.OrderedDict = collections.OrderedDict()
_cache_lock = threading.Lock()
_recorder = threading.local()  # .launches: the list :func:`record` appends to while recording
#: The plan of a configuration whose launches take an array made inside the launcher (not with
#: :func:`scratch`: a view): it runs its launcher every time.
UNPLANNED = "unplanned"


def record(function, grid, block, args, shared_mem):
    """Note a launch for the plan being recorded on this thread, if any."""
    launches = getattr(_recorder, "launches", None)
    if launches is not None:
        launches.append((function, grid, block, args, shared_mem))


class Plan:
    """The launches of one configuration and what the launcher answered.

    ``steps`` are ``(function, grid, block, args, shared_mem, slots)``: ``args`` with None where
    ``slots`` -- ``(position in args, index of the call's array)`` -- put the call's arrays,
    then the ``scratch`` arrays made again at each replay (a plan keeps no array alive).
    """

    __slots__ = ("steps", "result", "scratch")

    def __init__(self, steps, result, scratch):
        self.steps, self.result, self.scratch = tuple(steps), result, tuple(scratch)

    def replay(self, arrays):
        if self.scratch:  # made again, in the order the launcher made them
            arrays += tuple(_make(*spec) for spec in self.scratch)
        for function, grid, block, args, shared_mem, slots in self.steps:
            if slots:
                args = list(args)
                for position, index in slots:
                    args[position] = arrays[index]
                args = tuple(args)
            function(grid, block, args, shared_mem=shared_mem)
        return self.result


def _describe(array):
    """What a launch plan depends on in `array`: shape, strides, dtype and the pointer's 16-byte
    phase (the kernels' ``aligned`` flags and shared-memory caching); None for None."""
    if array is None:
        return None
    return array.shape, array.strides, array.dtype, array.data.ptr & 15


def plan_count():
    """Launch plans held (at most :data:`PLAN_CACHE_SIZE`)."""
    return len(cache)


def clear():
    """Drop every launch plan (the next call of each configuration records it again)."""
    with _cache_lock:
        cache.clear()


def _make(shape, dtype, fill):
    return (cupy.empty(shape, dtype) if fill is None else cupy.zeros(shape, dtype) if fill == 0
            else cupy.full(shape, fill, dtype))


def scratch(shape, dtype, fill=None):
    """A device array a launcher makes for its own launches: uninitialized, or filled with
    `fill` (0: ``cupy.zeros``). A plan records it and a replay makes it again."""
    array = _make(shape, dtype, fill)
    made = getattr(_recorder, "scratch", None)
    if made is not None:
        made.append((array, (shape, dtype, fill)))
    return array


def _plan(launches, made, arrays, result):
    """The :class:`Plan` of recorded `launches` over the call's `arrays` and the :func:`scratch`
    arrays `made`, or UNPLANNED when a launch takes another array (a view, an array made
    otherwise: it must be made at every call) or the launcher answered something else than
    None or a bool."""
    if result is not None and type(result) is not bool:
        return UNPLANNED
    known = arrays + tuple(array for array, _ in made)
    steps = []
    for function, grid, block, args, shared_mem in launches:
        template, slots = list(args), []
        for position, value in enumerate(args):
            if isinstance(value, cupy.ndarray):
                index = next((i for i, a in enumerate(known) if a is value), None)
                if index is None:
                    return UNPLANNED
                template[position] = None
                slots.append((position, index))
        steps.append((function, grid, block, tuple(template), shared_mem, tuple(slots)))
    return Plan(steps, result, [spec for _, spec in made])


def planned(tuning):
    """Cache the launches of a launcher per configuration: ``launcher(planes, *arguments)``,
    `planes` a ``_kernels.Planes`` or a device array.

    The first call of a configuration -- the shapes, strides, dtypes and 16-byte pointer phases
    of `planes` (``planes.values`` / ``.mask`` / ``.out``) and of the array `arguments`, the
    other `arguments` themselves, the device and ``tuning()`` (the constants the launcher reads)
    -- runs the launcher and records its launches; a later call with the same configuration
    replays them with its own arrays and answers what the launcher answered, skipping the
    launcher's Python work (layout, alignment, grid, shared memory, argument packing).
    Arrays the launcher makes with :func:`scratch` are made again at each replay; a launcher
    whose launches take any other array it makes (a view of one) is not replayed: it runs
    every time. Packed planes (``spans``) always run the launcher. At most
    :data:`PLAN_CACHE_SIZE` plans are kept, least recently used dropped first.
    """
    def decorate(launcher):
        @functools.wraps(launcher)
        def run(planes, *arguments):
            if getattr(_recorder, "launches", None) is not None:
                return launcher(planes, *arguments)  # inside another launcher's recording
            rows = not isinstance(planes, cupy.ndarray)  # a _kernels.Planes
            if rows:
                if planes.spans is not None:
                    return launcher(planes, *arguments)
                arrays = (planes.values, planes.mask, planes.out)
            else:
                arrays = (planes,)
            arrays += tuple(a for a in arguments if isinstance(a, cupy.ndarray))
            key = (launcher, arrays[0].device.id, tuning(), tuple(map(_describe, arrays)),
                   tuple(a for a in arguments if not isinstance(a, cupy.ndarray)))
            with _cache_lock:
                plan = cache.get(key)
                if plan is not None:
                    cache.move_to_end(key)
            if plan is UNPLANNED:
                return launcher(planes, *arguments)
            if plan is not None:
                if rows:  # (the callers of Planes launchers are on its device already)
                    return plan.replay(arrays)
                with arrays[0].device:
                    return plan.replay(arrays)
            _recorder.launches, _recorder.scratch = launches, made = [], []
            try:
                result = launcher(planes, *arguments)
            finally:
                _recorder.launches = _recorder.scratch = None
            with _cache_lock:
                cache[key] = _plan(launches, made, arrays, result)
                while len(cache) > PLAN_CACHE_SIZE:
                    cache.popitem(last=False)
            return result
        return run
    return decorate
