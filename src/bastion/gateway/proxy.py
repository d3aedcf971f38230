"""The JSON endpoints end to end: authenticate → admit → forward → settle.

The edge (``bastion.http``) reads the request and hands the gateway the bytes; everything
from validation to the last byte of the response happens here, written against the
:class:`Sink` protocol so the request lifecycle can be read and tested without a server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bastion.core.calendar import now_ms
from bastion.core.catalog import Catalog, Deployment, Endpoint, Model, Tier
from bastion.core.delivery import Delivery
from bastion.core.estimate import estimated_prompt_tokens, worst_case
from bastion.core.records import Principal
from bastion.core.usage import Usage, price_usage
from bastion.errors import BastionError, StoreUnavailableError, UpstreamError
from bastion.gateway.admission import Admission, Ticket
from bastion.gateway.forward import Forwarder
from bastion.gateway.settlement import Settler, usage_text
from bastion.gateway.sink import NOT_BILLED, ClientGoneError, Exchange, Sink
from bastion.gateway.streaming import StreamMeter, error_event, model_rewriter, rewrite_model
from bastion.gateway.validation import validate, wants_stream, wants_usage_chunk
from bastion.observability.metrics import Metrics
from bastion.settings import Settings
from bastion.upstream.openai import Deadline, UpstreamAttemptError, UpstreamReply
from bastion.upstream.usage import answer_usage, output_text

log = logging.getLogger("bastion.gateway")

JSON_TYPES = frozenset({"application/json"})
STREAM_TYPES = frozenset({"text/event-stream"})
STREAM_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@dataclass(slots=True)
class Outcome:
    """What happened to one admitted request, for its settlement and its log line."""

    ticket: Ticket
    model: Model
    endpoint: Endpoint
    started_ms: int
    status: int = 0
    usage: Usage | None = None
    cost: int = 0
    charged: bool = False
    """The charge was started (it may be free: then ``charge`` stays None)."""
    charge: asyncio.Future[int | None] | None = field(default=None)
    """The ledger version of the charge, once durable."""
    exchange: Exchange | None = None
    forwarding_since: float = field(default_factory=time.perf_counter)
    """When the request was admitted: the upstream phase runs from here until its answer
    is complete (the charge begins) or the request fails."""
    forwarded_s: float | None = None
    usage_data: dict[str, Any] | None = None
    """``usage`` as logged, and as written (``usage_json``): made once per request."""
    usage_json: str | None = None


class _Committed:
    """A charge's done-callback: how long the request waited for its group commit (from
    the charge's enqueueing to its durability), as its log line's ``commit_ms``."""

    __slots__ = ("info", "started")

    def __init__(self, info: dict[str, object]) -> None:
        self.info = info
        self.started = time.perf_counter()

    def __call__(self, _charge: asyncio.Future[int | None]) -> None:
        self.info["commit_ms"] = round((time.perf_counter() - self.started) * 1000, 3)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        admission: Admission,
        forwarder: Forwarder,
        settler: Settler,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.admission = admission
        self.forwarder = forwarder
        self.settler = settler
        self._ending: set[asyncio.Future[None]] = set()
        """Ends of requests cancelled while their charge committed (kept referenced)."""
        self.use_settings(settings)

    def use_settings(self, settings: Settings) -> None:
        """Serve with these settings from now on (at start, and on a reload)."""
        self.settings = settings
        self.catalog: Catalog = settings.catalog
        self._bytes_per_token = settings.billing.input_bytes_per_token
        self._total_s: dict[str, float] = {}
        """Each model's total deadline, the longest of its deployments' (read per request)."""

    async def drain(self, timeout_s: float) -> None:
        """Wait, at most ``timeout_s``, for the ends of requests cut short while their charge
        was committing: they release their hold and record their usage row in the
        background, after their handler has ended."""
        if self._ending:
            await asyncio.wait(set(self._ending), timeout=timeout_s)

    def tier_of(self, principal: Principal) -> Tier:
        return self.settings.tiers.get(principal.account.tier) or self.settings.default_tier

    # -- lifecycle helpers shared by every endpoint ---------------------------------------

    async def admit(
        self, exchange: Exchange, principal: Principal, model: Model, hold_usage: Usage
    ) -> Ticket:
        """Admit the request (limits, then the hold of ``hold_usage`` at ``model``'s prices);
        the time it took is its log line's ``admit_ms`` (the limiter store's round trip,
        scaled out)."""
        hold = price_usage(hold_usage, model.price)
        started = time.perf_counter()
        try:
            return await self.admission.admit(
                exchange.request_id, principal, self.tier_of(principal), hold
            )
        finally:
            exchange.info["admit_ms"] = round((time.perf_counter() - started) * 1000, 3)

    async def report_rate(self, exchange: Exchange, principal: Principal) -> None:
        """Rate-limit state for an authenticated request refused before its admission (a
        client error such as 400 or 413), so that every authenticated response carries it.

        The request counts against the key's rate like any other and holds nothing.  If the
        limiter refuses or cannot be consulted, the client's own error stands unchanged (a
        client mistake never becomes a 429 or a 5xx here)."""
        if exchange.headers:
            return
        try:
            ticket = await self.admission.admit(
                exchange.request_id, principal, self.tier_of(principal), 0
            )
        except BastionError as refusal:
            exchange.headers.update(
                (k, v) for k, v in refusal.headers().items() if k.startswith("x-ratelimit-")
            )
            return
        await ticket.release()
        exchange.headers.update(ticket.headers)

    def start_charge(
        self, outcome: Outcome, usage: Usage, delivery: Delivery | None = None
    ) -> None:
        """Begin writing the charge in a task of its own: if the client leaves while it is
        being committed, the commit still completes and the cache still learns of it."""
        if outcome.forwarded_s is None:
            outcome.forwarded_s = time.perf_counter() - outcome.forwarding_since
        outcome.usage = usage
        outcome.usage_data = usage.as_dict()
        outcome.usage_json = usage_text(outcome.usage_data)
        outcome.charged = True
        cost, charge = self.settler.charge(
            outcome.ticket,
            outcome.model,
            outcome.endpoint.value,
            usage,
            outcome.usage_json,
            delivery,
        )
        outcome.cost, outcome.charge = cost, charge
        if charge is not None and outcome.exchange is not None:
            # the answer's wait for its charge's group commit: the log line's commit_ms
            charge.add_done_callback(_Committed(outcome.exchange.info))

    async def answer(
        self,
        outcome: Outcome,
        usage: Usage,
        sink: Sink,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str],
    ) -> None:
        """Charge ``usage`` and send the 200 answer, commit before completion: its bytes
        leave the moment the charge is durable, or never (a 503 instead) if it cannot be."""
        delivery = Delivery()
        self.start_charge(outcome, usage, delivery)
        outcome.status = 200
        durable = None if outcome.charge is None else asyncio.shield(outcome.charge)
        try:
            await sink.respond(200, body, content_type, headers, durable, delivery)
        except StoreUnavailableError:
            outcome.status = 503
            raise

    async def finish(self, outcome: Outcome) -> None:
        """Release the hold (applying the charge, if one was written) and log the request.

        A request's end is not cancellable: its answer may have reached the client before
        this runs (it leaves from the commit), and a client that then closes the connection
        cancels the handler.  Whatever the cancellation interrupts completes all the same
        (in the background if it must wait), so no hold, slot or usage row is left behind."""
        if outcome.forwarded_s is None:
            outcome.forwarded_s = time.perf_counter() - outcome.forwarding_since
        charge = outcome.charge
        if charge is not None and not charge.done():
            try:
                await asyncio.shield(charge)
            except asyncio.CancelledError:
                task = asyncio.ensure_future(self._settle(outcome))
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)
                raise
            except Exception:  # noqa: S110 - its outcome is read (and logged) in _settle
                pass
        await self._settle(outcome)

    async def _settle(self, outcome: Outcome) -> None:
        version: int | None = None
        charge = outcome.charge
        if charge is not None:
            try:
                version = await asyncio.shield(charge)
            except StoreUnavailableError:
                outcome.cost, version = 0, None
                self.metrics.store_error("ledger", "charge")
            except Exception:
                log.exception("charge failed")
                outcome.cost, version = 0, None
                self.metrics.store_error("ledger", "charge")
        try:
            # a remote release is shielded by its store: cut short here, it still completes
            await outcome.ticket.release(outcome.cost, version)
        finally:
            self._account(outcome)

    def _account(self, outcome: Outcome) -> None:
        """The request's metrics, log facts and usage-history row."""
        assert outcome.forwarded_s is not None
        usage = outcome.usage_data if outcome.cost else None
        if usage is not None:
            self.metrics.charge(outcome.model.id, usage, outcome.cost)
        if outcome.exchange is not None:
            info = outcome.exchange.info
            info["cost_micros"] = outcome.cost
            info["upstream_ms"] = round(outcome.forwarded_s * 1000, 3)
            if usage is not None:
                info["usage"] = usage
        self.settler.record(
            outcome.ticket,
            model=outcome.model.id,
            endpoint=outcome.endpoint.value,
            status=outcome.status or 499,
            usage_json=outcome.usage_json if outcome.cost else None,
            cost=outcome.cost,
            started_ms=outcome.started_ms,
        )

    # -- JSON endpoints --------------------------------------------------------------------

    async def handle_json(
        self,
        endpoint: Endpoint,
        exchange: Exchange,
        principal: Principal,
        body: bytes,
        payload: dict[str, Any],
        sink: Sink,
    ) -> None:
        """Serve one JSON endpoint call."""
        name = validate(endpoint, payload)
        model = self.catalog.resolve(name, endpoint, self.tier_of(principal))
        exchange.info["model"] = model.id
        estimate = worst_case(
            endpoint, payload, len(body), model, bytes_per_token=self._bytes_per_token
        )
        ticket = await self.admit(exchange, principal, model, estimate)
        headers = exchange.headers
        headers.update(ticket.headers)
        outcome = Outcome(ticket, model, endpoint, now_ms(), exchange=exchange)
        try:
            if wants_stream(endpoint, payload):
                await self._stream(outcome, name, body, payload, sink, headers)
            else:
                await self._unary(outcome, name, body, payload, sink, headers)
        except BastionError as error:
            outcome.status = error.status
            raise
        finally:
            await self.finish(outcome)

    def _body_for(
        self, body: bytes, payload: dict[str, Any], name: str, ask_usage: bool
    ) -> tuple[Any, str | None] | Any:
        """The body for each deployment: the client's bytes when nothing changes, else the
        upstream model id and, on chat and completions streams (``ask_usage``), the usage
        Bastion bills from.  Responses streams report usage in their terminal event anyway,
        and ``stream_options`` is not one of their parameters: nothing is added there."""

        def build(deployment: Deployment) -> tuple[Any, str | None]:
            if deployment.upstream_model == name and not ask_usage:
                return body, "application/json"  # nothing to change: forward the bytes
            changed = dict(payload)
            changed["model"] = deployment.upstream_model
            if ask_usage:
                options = dict(payload.get("stream_options") or {})
                options["include_usage"] = True
                upstream = self.forwarder.upstream(deployment.upstream).settings
                if upstream.continuous_usage and "continuous_usage_stats" not in options:
                    options["continuous_usage_stats"] = True
                changed["stream_options"] = options
            return orjson.dumps(changed), "application/json"

        return build

    async def _unary(
        self,
        outcome: Outcome,
        name: str,
        body: bytes,
        payload: dict[str, Any],
        sink: Sink,
        headers: dict[str, str],
    ) -> None:
        endpoint, model = outcome.endpoint, outcome.model
        deadline = Deadline.after(self.total_timeout(model))
        deployment, reply = await self.send_upstream(
            model, endpoint, self._body_for(body, payload, name, False), deadline, JSON_TYPES
        )
        try:
            answer_bytes = await reply.body()
            reply.release()
        finally:
            reply.close()
        try:
            answer = orjson.loads(answer_bytes)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"The model server for `{name}` sent an answer that is not valid JSON."
            ) from None
        if not isinstance(answer, dict):
            raise UpstreamError(f"The model server for `{name}` sent an unexpected answer.")
        usage = answer_usage(endpoint, answer) or Usage(
            input_tokens=estimated_prompt_tokens(len(body)),
            output_tokens=-(-output_text(endpoint, answer) // 4),
            source="estimated",
        )
        if endpoint is Endpoint.IMAGES:
            size, quality = payload.get("size"), payload.get("quality")
            usage.image_size = size if isinstance(size, str) else None
            usage.image_quality = quality if isinstance(quality, str) else None
        if deployment.upstream_model != name:
            answer_bytes = rewrite_model(
                answer_bytes, model_rewriter(deployment.upstream_model, name)
            )
        await self.answer(outcome, usage, sink, answer_bytes, "application/json", headers)

    async def _stream(
        self,
        outcome: Outcome,
        name: str,
        body: bytes,
        payload: dict[str, Any],
        sink: Sink,
        headers: dict[str, str],
    ) -> None:
        endpoint, model = outcome.endpoint, outcome.model
        ask_usage = endpoint is not Endpoint.RESPONSES
        deadline = Deadline.after(self.total_timeout(model))
        deployment, reply = await self.send_upstream(
            model, endpoint, self._body_for(body, payload, name, ask_usage), deadline, STREAM_TYPES
        )
        upstream = self.forwarder.upstream(deployment.upstream).settings
        options = payload.get("stream_options")
        meter = StreamMeter(
            endpoint=endpoint,
            client_wants_usage=wants_usage_chunk(payload),
            added_continuous_usage=ask_usage
            and upstream.continuous_usage
            and not (isinstance(options, dict) and "continuous_usage_stats" in options),
            body_bytes=len(body),
            needles=model_rewriter(deployment.upstream_model, name)
            if deployment.upstream_model != name
            else None,
        )
        sent_any = False
        closed = self.metrics.stream_opened(endpoint.value)
        try:
            try:
                async for chunk in reply.chunks():
                    out = meter.feed(chunk)
                    if not out:
                        continue
                    if not sent_any:
                        await sink.open_stream({**headers, **STREAM_HEADERS})
                        sent_any = True
                    await sink.write(out)
                tail = meter.finish()
                if tail:
                    if not sent_any:
                        await sink.open_stream({**headers, **STREAM_HEADERS})
                        sent_any = True
                    await sink.write(tail)
            except (UpstreamAttemptError, ValueError) as failure:
                # the upstream broke mid-stream (or sent an event over the splitter's limit):
                # a failed request, not charged
                reason = (
                    failure.reason
                    if isinstance(failure, UpstreamAttemptError)
                    else "the upstream sent an oversized event"
                )
                if not sent_any:
                    raise UpstreamError(
                        f"The model server for `{name}` failed: {reason}."
                    ) from None
                outcome.status = 502
                await sink.write(error_event(f"The model server for `{name}` failed: {reason}."))
                await sink.close_stream()
                return
            if not meter.done:
                if not sent_any:
                    raise UpstreamError(
                        f"The model server for `{name}` ended the stream without an answer."
                    )
                outcome.status = 502
                await sink.write(
                    error_event(f"The model server for `{name}` ended the stream early.")
                )
                await sink.close_stream()
                return
            if not sent_any:
                await sink.open_stream({**headers, **STREAM_HEADERS})
                sent_any = True
            # Commit before completion: the usage chunk and [DONE] leave the moment the
            # charge is durable, and never if it cannot be written.
            delivery = Delivery()
            self.start_charge(outcome, meter.produced(), delivery)
            final = (meter.held_usage_chunk or b"") + (meter.terminal or b"")
            outcome.status = 200
            try:
                await sink.close_stream(
                    final,
                    None if outcome.charge is None else asyncio.shield(outcome.charge),
                    delivery,
                    error_event(NOT_BILLED, code="service_unavailable"),
                )
            except StoreUnavailableError:
                outcome.status = 503
                return
        except (ClientGoneError, asyncio.CancelledError):
            # The client left: stop the upstream now, bill what it produced if anything
            # reached the client (a client gone before the first byte pays nothing).
            reply.close()
            outcome.status = 499
            if sent_any and not outcome.charged:
                self.start_charge(outcome, meter.produced())
            raise
        finally:
            closed()
            reply.close()

    async def send_upstream(
        self,
        model: Model,
        endpoint: Endpoint,
        build: Any,
        deadline: Deadline,
        accept: frozenset[str],
    ) -> tuple[Deployment, UpstreamReply]:
        """The answer of one of ``model``'s deployments (the forwarder fails over before the
        first byte); a failed attempt or an HTTP error status becomes :class:`UpstreamError`."""
        try:
            deployment, reply = await self.forwarder.send(
                model, endpoint.path, build, deadline, accept
            )
        except UpstreamAttemptError as failure:
            raise UpstreamError(
                f"The model server for `{model.id}` failed: {failure.reason}."
            ) from None
        if reply.status >= 400:
            try:
                detail = _safe_error_code(await reply.body(64 * 1024))
            except UpstreamAttemptError:
                detail = ""
            finally:
                reply.close()
            raise UpstreamError(
                f"The model server for `{model.id}` rejected the request with HTTP "
                f"{reply.status}{detail}. Check parameters this model may not support "
                "(for example `store`, `tools` or `response_format`)."
            )
        return deployment, reply

    def total_timeout(self, model: Model) -> float:
        """The longest total timeout among ``model``'s deployments (cached per model)."""
        total = self._total_s.get(model.id)
        if total is None:
            total = self._total_s[model.id] = max(
                self.forwarder.upstream(d.upstream).settings.timeouts.total_s
                for d in model.deployments
            )
        return total


def _safe_error_code(body: bytes) -> str:
    """The upstream's error code and the parameter it names, if they are plain identifiers;
    never its free-text message, which may echo user content or reveal the upstream's
    internals."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return ""
    code = next(
        (f" ({name}: {error[name]})" for name in ("code", "type") if _identifier(error.get(name))),
        "",
    )
    param = error.get("param")
    return code + (f" because of the parameter `{param}`" if _identifier(param) else "")


def _identifier(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value.replace("_", "").replace(".", "").isalnum()
        and value.isascii()
    )
