"""Lowering: the AST of a flow file to the IR graph, with every name resolved.

Lowering walks the file once, in order: it resolves the `use` lines, types the
header's parameters, then turns each chain into stages, expanding `def` fragments
inline and resolving each stage's function and options through the checker families
in `checks/`. The passes that need the whole graph (splits, order, shape, delivery)
run on the result. Every problem becomes a diagnostic; nothing here raises for a bad
file, and a name that failed once is silent afterwards so that one mistake gives one
message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from reflow_lang.frontend import ast, ir
from reflow_lang.frontend.checks import (
    delivery,
    functions,
    libraries,
    names,
    options,
    order,
    shape,
    splits,
    uses,
)
from reflow_lang.frontend.checks.functions import FunctionScope
from reflow_lang.frontend.diagnostics import Diagnostic, error
from reflow_lang.frontend.parser import Lost
from reflow_lang.frontend.span import Span
from reflow_lang.plan import DEFAULT_CAPACITY

# The input of a stage whose real input is unknown after an error: no stream has this
# name, so the graph passes treat the stage's order and splits as unknown.
UNKNOWN = "?"

_HEADS = frozenset({"source", "merge", "join"})

# Fragments may use fragments, but expanding is bounded: it recurses once per level,
# and a fragment that uses another twice, at each of 30 levels, would expand to a
# billion stages. Real flows stay far below both limits.
MAX_FRAGMENT_DEPTH = 32
MAX_EXPANDED = 10_000


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where a chain stands: the stream the next stage reads, or the sink ending it."""

    stream: str | None
    sink: str | None = None


@dataclass(slots=True)
class _StreamInfo:
    span: Span
    producer: str
    capacity: int
    bound: bool
    dead_letter: bool


@dataclass(slots=True)
class _Graph:
    """The stages and streams built so far, and the names that lead to them."""

    stages: list[ir.Stage] = field(default_factory=list)
    streams: dict[str, _StreamInfo] = field(default_factory=dict)
    # A name the file binds, to the stream it denotes (`None`: unknown after an error).
    names: dict[str, str | None] = field(default_factory=dict)
    name_spans: dict[str, Span] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    # Streams some head names, even where the chain then failed to lower.
    read: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)


def lower(
    module: ast.Module,
    params: Mapping[str, str] | None = None,
    lost: Lost | None = None,
) -> tuple[ir.Flow | None, list[Diagnostic]]:
    """Lowers a parsed file; the flow is `None` for a library file (no header).

    `lost` names what statements that failed to parse would have bound: those names
    are known but unknown in kind, so reading them reports nothing.
    """
    found: list[Diagnostic] = []
    file = module.span.file
    loaded = libraries.load(module, found)
    table, problems = uses.resolve_uses(loaded.others, os.path.dirname(file))
    found.extend(problems)
    lost = lost or Lost()
    for alias in lost.modules:
        table.modules.setdefault(alias, None)
    if lost.use:
        loaded = replace(loaded, failed=True)

    header = module.header
    declared = {p.name: p.type for p in header.params} if header else {}
    scope = FunctionScope(table, declared, found)
    lowerer = _Lowerer(module, scope, loaded, lost)
    if header is None:
        found.extend(names.library_statement(s.span) for s in module.body)
        found.extend(delivery.unknown_given(module.span, n, ()) for n in params or {})
        lowerer.check_unused_defs()
        return None, found
    return lowerer.flow(header, params or {}), found


class _Lowerer:
    """Lowers one file's chains into a `_Graph`; see `lower`."""

    def __init__(
        self,
        module: ast.Module,
        scope: FunctionScope,
        loaded: libraries.Loaded,
        lost: Lost,
    ) -> None:
        self.module = module
        self.lost = lost
        self.scope = scope
        self.found = scope.diagnostics
        self.libraries = loaded.libraries
        self.libraries_failed = loaded.failed
        # The scope each library fragment resolves its functions in.
        self.def_scopes: dict[str, FunctionScope] = {}
        self.graph = _Graph()
        self.defs: dict[str, ast.Def] = {}
        self.used_defs: set[str] = set()
        self.later: dict[str, Span] = {}
        self.binding_span: Span | None = None
        self.unknown_reads = 0
        self.unknown_stages = 0
        # Stages expanded from fragments so far, and whether expanding was cut short.
        self.expanded = 0
        self.expansion_cut = False
        self._collect_defs()

    # -- the whole file -------------------------------------------------------------

    def flow(self, header: ast.Header, given: Mapping[str, str]) -> ir.Flow:
        params = delivery.lower_params(header, given, self.found)
        self.scope.param_values.update((p.name, p.value) for p in params)
        chosen = delivery.lower_delivery(header, self.found)
        self.later = dict(_bound_names(self.module.body))
        # A name a parsed statement binds too is left to it (and to E102 if twice).
        for name in self.lost.streams - self.later.keys():
            self.graph.names[name] = None
        for statement in self.module.body:
            self._statement(statement)

        stages, stream_orders = self._annotate(tuple(self.graph.stages))
        built = ir.Flow(
            span=header.span,
            name=header.name,
            file=self.module.span.file,
            delivery=chosen,
            params=params,
            uses=(
                *self.scope.modules.uses.values(),
                *(library.describe() for library in self.libraries),
            ),
            stages=stages,
            streams=self._streams(stages, stream_orders),
        )
        if not self.unknown_reads:
            # A misspelt stream name may have been meant for any stream, so which
            # streams are unread is not known until it is fixed.
            self.found.extend(shape.check_graph(built, self.graph.read))
        else:
            self.found.extend(shape.check_sinks(built))
        self.found.extend(delivery.check_rewindable(built))
        self._unused(header)
        return built

    def check_unused_defs(self) -> None:
        """Checks the fragments no chain expanded (all of them in a library)."""
        for name, definition in self.defs.items():
            if name in self.def_scopes:
                continue  # a library's fragments are checked with the library
            if name not in self.used_defs or name in self.cyclic:
                self._check_alone(definition)

    def _collect_defs(self) -> None:
        first, duplicates = names.find_duplicates(
            ((d.name, d.name_span) for d in self.module.defs), "fragment"
        )
        self.found.extend(duplicates)
        self.defs = {
            d.name: d for d in self.module.defs if first[d.name] is d.name_span
        }
        for definition in self.defs.values():
            self.found.extend(names.check_def_shape(definition))
        for library in self.libraries:
            self._import(library)
        self.cyclic, cycles = names.fragment_cycles(self.defs)
        self.found.extend(cycles)

    def _import(self, library: libraries.Library) -> None:
        for definition in library.defs:
            if definition.name in self.defs:
                first = self.defs[definition.name].name_span
                what = f"fragment `{definition.name}` of library"
                self.found.append(
                    names.duplicate(library.use.span, what, library.use.bound, first)
                )
                continue
            self.defs[definition.name] = definition
            self.def_scopes[definition.name] = library.scope

    def _check_alone(self, definition: ast.Def) -> None:
        # Lowered into a graph that is thrown away, so that a fragment no chain uses
        # still has its functions and options checked.
        kept, self.graph = self.graph, _Graph()
        cursor = _Cursor(None)
        for stage in definition.chain.stages:
            cursor = self._stage(stage, cursor, f"def {definition.name}", (), None)
        self.graph = kept

    def _unused(self, header: ast.Header) -> None:
        for name, definition in self.defs.items():
            # After a misspelt stage name, a fragment may look unused only because
            # of the misspelling.
            # After a cut expansion, the fragments below the cut look unused.
            if (
                name in self.cyclic
                or self.unknown_stages
                or self.expansion_cut
                or name in self.def_scopes
            ):
                continue
            if name not in self.used_defs:
                self.found.append(names.unused_fragment(definition))
        self.check_unused_defs()
        for use in self.module.uses:
            if (
                use.bound in self.scope.modules.uses
                and use.bound not in self.scope.used_modules
            ):
                self.found.append(uses.unused_module(use))
        for library in self.libraries:
            used = any(d.name in self.used_defs for d in library.defs)
            if not used and library.use.span.file == self.module.span.file:
                self.found.append(uses.unused_module(library.use))
        self.found.extend(delivery.unused_params(header, self.scope.used_params))

    # -- chains -----------------------------------------------------------------------

    def _statement(self, statement: ast.Binding | ast.Statement) -> None:
        chain = statement.chain
        binding = statement if isinstance(statement, ast.Binding) else None
        prefix = binding.name if binding else f"line{chain.span.line}"
        self.binding_span = binding.name_span if binding else None
        head_output = binding.name if binding and not chain.stages else None
        cursor = self._head(chain.head, prefix, head_output)
        for index, stage in enumerate(chain.stages):
            last = index == len(chain.stages) - 1
            output = binding.name if binding and last else None
            cursor = self._stage(stage, cursor, prefix, (), output)

        if binding is not None:
            self._bind(binding, cursor)
        elif cursor.sink is None and cursor.stream is not None:
            last_span = chain.stages[-1].span if chain.stages else chain.head.span
            self.found.append(shape.unbound_without_sink(last_span))

    def _bind(self, binding: ast.Binding, cursor: _Cursor) -> None:
        if cursor.sink is not None:
            self.found.append(shape.bound_sink(binding.name_span, binding.name))
            self._name(binding.name, binding.name_span, None)
        elif cursor.stream != binding.name:
            # `b = a` (or a chain of fragments with no stages) names an existing stream.
            self._name(binding.name, binding.name_span, cursor.stream)

    def _name(self, name: str, span: Span, stream: str | None) -> bool:
        graph = self.graph
        if name in graph.names:
            self.found.append(
                names.duplicate(span, "stream", name, graph.name_spans[name])
            )
            return False
        graph.names[name] = stream
        graph.name_spans[name] = span
        return True

    def _read(self, name: ast.Name) -> str | None:
        dotted = name.dotted
        graph = self.graph
        if dotted in graph.names:
            stream = graph.names[dotted]
            if stream is not None:
                graph.read.add(stream)
            return stream
        if dotted in self.lost.streams:
            # A statement that failed to parse may bind it, above this read or not.
            return None
        later = self.later.get(dotted)
        self.unknown_reads += 1
        self.found.append(
            names.unknown_stream(name.span, dotted, later, graph.names, self.defs)
        )
        return None

    # -- heads ------------------------------------------------------------------------

    def _head(self, head: ast.Head, prefix: str, output: str | None) -> _Cursor:
        if isinstance(head, ast.StreamHead):
            return _Cursor(self._read(head.name))
        if isinstance(head, ast.SourceHead):
            function = functions.resolve_call(head.function, "source", self.scope)
            return self._add(head, "source", prefix, output, function, head.options, ())
        if isinstance(head, ast.MergeHead):
            inputs = tuple(self._read(name) or UNKNOWN for name in head.inputs)
            self._check_distinct("merge", head.inputs, inputs)
            return self._add(head, "merge", prefix, output, None, head.options, inputs)
        return self._join(head, prefix, output)

    def _join(self, head: ast.JoinHead, prefix: str, output: str | None) -> _Cursor:
        inputs = (self._read(head.left) or UNKNOWN, self._read(head.right) or UNKNOWN)
        self._check_distinct("join", (head.left, head.right), inputs)
        left = functions.lower_key(head.left_key, self.scope)
        right = functions.lower_key(head.right_key, self.scope)
        keys = (left, right) if left is not None and right is not None else ()
        cursor = self._add(head, "join", prefix, output, None, head.options, inputs)
        last = self.graph.stages[-1]
        if last.options.how is None:
            last = replace(last, options=replace(last.options, how="inner"))
        self.graph.stages[-1] = replace(last, join_keys=keys)
        return cursor

    def _check_distinct(
        self, kind: str, names: tuple[ast.Name, ...], streams: tuple[str, ...]
    ) -> None:
        # A task reads each of its input queues once: a stream named twice (or under
        # an alias, `b = a`) would be waited on twice, and the job would never end.
        seen: dict[str, str] = {}
        for name, stream in zip(names, streams, strict=True):
            if stream != UNKNOWN and stream in seen:
                first = seen[stream]
                self.found.append(shape.read_twice(name.span, kind, name.dotted, first))
            seen.setdefault(stream, name.dotted)

    # -- stages -----------------------------------------------------------------------

    def _stage(
        self,
        stage: ast.Stage,
        cursor: _Cursor,
        prefix: str,
        fragments: tuple[str, ...],
        output: str | None,
    ) -> _Cursor:
        if stage.kind == "fragment" or stage.kind not in names.STAGE_KEYWORDS:
            return self._fragment(stage, cursor, prefix, fragments, output)
        after_sink = cursor.sink is not None
        if cursor.sink is not None:
            self.found.append(shape.after_sink(stage.span, cursor.sink))
            cursor = _Cursor(None)

        function = self._function(stage)
        inputs = (cursor.stream or UNKNOWN,)
        if stage.kind == "sink":
            output = None
        if after_sink:
            # Still checked, but the chain's end is already reported.
            self._add(stage, stage.kind, prefix, None, function, stage.options, inputs)
            return _Cursor(None)
        return self._add(
            stage,
            stage.kind,
            prefix,
            output,
            function,
            stage.options,
            inputs,
            fragments,
        )

    def _function(self, stage: ast.Stage) -> ir.Function | None:
        if stage.kind == "count":
            return None
        if stage.function is None:
            msg = f"`{stage.kind}` needs a function"
            hint = f"write `{stage.kind} F(args)`"
            self.found.append(error("E306", stage.kind_span, msg, hint))
            return None
        return functions.resolve_call(stage.function, stage.kind, self.scope)

    def _fragment(
        self,
        stage: ast.Stage,
        cursor: _Cursor,
        prefix: str,
        fragments: tuple[str, ...],
        output: str | None,
    ) -> _Cursor:
        name = stage.kind
        if stage.kind == "fragment" and stage.function is not None:
            name = stage.function.callee.dotted
        definition = self.defs.get(name)
        if definition is None:
            self.unknown_stages += 1
            if not self.libraries_failed and name not in self.lost.fragments:
                self.found.append(names.unknown_stage(stage.span, name, self.defs))
            return _Cursor(None)
        if stage.options or (stage.function is not None and stage.function.args):
            self.found.append(names.fragment_with_extras(stage, name))
        self.used_defs.add(name)
        if name in self.cyclic or self._too_big(stage, name, fragments):
            return _Cursor(None)

        # A library's fragment resolves functions through the library's modules.
        outer, self.scope = self.scope, self.def_scopes.get(name, self.scope)
        inner = definition.chain.stages
        self.expanded += len(inner)
        for index, inner_stage in enumerate(inner):
            last_output = output if index == len(inner) - 1 else None
            cursor = self._stage(
                inner_stage, cursor, f"{prefix}/{name}", (*fragments, name), last_output
            )
        self.scope = outer
        return cursor

    def _too_big(self, stage: ast.Stage, name: str, fragments: tuple[str, ...]) -> bool:
        """Whether expanding `name` here would nest or grow past the limits (E109).

        Reported once: every later expansion is cut for the same reason.
        """
        if len(fragments) < MAX_FRAGMENT_DEPTH and self.expanded < MAX_EXPANDED:
            return False
        if not self.expansion_cut:
            self.expansion_cut = True
            self.found.append(
                names.expansion_too_big(
                    stage.span, (*fragments, name), MAX_FRAGMENT_DEPTH, MAX_EXPANDED
                )
            )
        return True

    def _add(
        self,
        node: ast.Stage | ast.Head,
        kind: str,
        prefix: str,
        output: str | None,
        function: ir.Function | None,
        given: tuple[ast.Option, ...],
        inputs: tuple[str, ...],
        fragments: tuple[str, ...] = (),
    ) -> _Cursor:
        typed = options.lower_options(kind, node.span, given, self.scope)
        # A head alone in a bound chain is named by the binding (`lines`); any other
        # stage by its chain and kind (`words/map`).
        alone = output is not None and output == prefix and kind in _HEADS
        name = self._unique(prefix if alone else f"{prefix}/{kind}")
        if kind == "sink":
            written = None
        else:
            written = output or name
            bound = output is not None
            span = self.binding_span if bound and self.binding_span else node.span
            self._stream(written, span, name, typed.capacity, bound)
        self._dead_letter(typed, node.span, name)
        self.graph.stages.append(
            ir.Stage(
                node.span,
                name,
                kind,  # type: ignore[arg-type]
                function,
                inputs,
                written,
                typed,
                fragments,
            )
        )
        if kind == "sink":
            return _Cursor(None, sink=name)
        return _Cursor(written)

    def _stream(
        self, name: str, span: Span, producer: str, capacity: int, bound: bool
    ) -> None:
        if bound and not self._name(name, span, name):
            return
        self.graph.streams[name] = _StreamInfo(span, producer, capacity, bound, False)

    def _dead_letter(self, typed: ir.Options, span: Span, producer: str) -> None:
        policy = typed.on_error
        if policy is None or policy.dead_letter is None:
            return
        name = policy.dead_letter
        if self._name(name, policy.span, name):
            self.graph.streams[name] = _StreamInfo(
                policy.span, producer, DEFAULT_CAPACITY, True, True
            )

    def _unique(self, base: str) -> str:
        taken = self.graph.taken
        name = base
        while name in taken:
            count = self.graph.counters.get(base, 1) + 1
            self.graph.counters[base] = count
            name = f"{base}#{count}"
        taken.add(name)
        return name

    # -- whole-graph passes ---------------------------------------------------------

    def _annotate(
        self, stages: tuple[ir.Stage, ...]
    ) -> tuple[tuple[ir.Stage, ...], dict[str, ir.Order | None]]:
        stages, problems = splits.annotate(stages)
        self.found.extend(problems)
        stages, stream_orders, problems = order.annotate(stages)
        self.found.extend(problems)
        return stages, stream_orders

    def _streams(
        self, stages: tuple[ir.Stage, ...], orders: dict[str, ir.Order | None]
    ) -> tuple[ir.Stream, ...]:
        readers: dict[str, list[str]] = {name: [] for name in self.graph.streams}
        for stage in stages:
            for name in dict.fromkeys(stage.inputs):
                if name in readers:
                    readers[name].append(stage.name)
        return tuple(
            ir.Stream(
                info.span,
                name,
                info.producer,
                tuple(readers[name]),
                info.capacity,
                info.bound,
                info.dead_letter,
                orders.get(name),
            )
            for name, info in self.graph.streams.items()
        )


def _bound_names(
    body: tuple[ast.Binding | ast.Statement, ...],
) -> Iterator[tuple[str, Span]]:
    """Every name the body binds, also by `dead_letter(NAME)`, for E103's message."""
    for statement in reversed(body):
        if isinstance(statement, ast.Binding):
            yield statement.name, statement.name_span
        heads = statement.chain.head
        given = list(statement.chain.stages)
        for stage_options in [
            getattr(heads, "options", ()),
            *(s.options for s in given),
        ]:
            for option in stage_options:
                value = option.value
                if option.key == "on_error" and isinstance(value, ast.Call):
                    if value.callee.dotted == "dead_letter" and value.args:
                        arg = value.args[0]
                        if isinstance(arg, ast.Name):
                            yield arg.dotted, arg.span
