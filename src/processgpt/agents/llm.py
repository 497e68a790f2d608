"""The built-in ``llm`` orchestrator: a tool-calling agent on any OpenAI-compatible Chat
Completions endpoint (OpenAI, vLLM, Ollama, LM Studio, LiteLLM proxies), streaming.

Configuration is a :class:`~processgpt.config.LlmSettings` (``PROCESSGPT_LLM_*``), built by
the composition root and passed in; without a model endpoint the executor refuses to be
created (:class:`~processgpt.domain.errors.InvalidConfiguration`). A task's ``input`` may
override ``model``, ``instructions`` and ``max_steps``; ``input.history`` (a list of
``{"role": "user"|"assistant", "text": …}``) is sent before the query; the files the task
was given go with the query (:mod:`processgpt.agents.llm_attachments`).

A task submitted under an agent profile (``extras["agent_profile"]``, an ``agents`` row read
at claim time) runs with the profile's settings. Precedence, highest first: the task's
``input`` overrides, then the profile, then the environment defaults — for ``model`` and
``instructions`` alike. The profile's ``persona`` is added to the system instructions (also
when the task overrides ``instructions``). A profile with ``tools`` limits the MCP tools to
those named (an MCP server name allows all its tools; ``<server>__<tool>`` one tool);
``ask_human`` is always available. The profile's ``skills`` are listed in the system
instructions. The profile is read when the task is claimed: an edit applies from the next task.

One run is a loop of steps; each step is one streamed completion: ``step_started``, the text
as coalesced ``text_delta`` events, the tool calls as ``tool_usage_started`` /
``tool_usage_finished`` events (MCP tools from :mod:`processgpt.tools.mcp`, plus the built-ins
``ask_human``, ``delegate`` — another agent, local through the queue or remote over A2A, see
:mod:`processgpt.agents.delegate`; offered only where it can work — on a worker with memory
``memory_search`` / ``memory_save`` (:mod:`processgpt.tools.memory_tools`), and on a worker
with file storage ``send_file`` (:mod:`processgpt.tools.file_tools`)), and ``step_finished``
with the token usage. The loop ends when the model
answers without tool calls; the last allowed step (``max_steps``) is sent without tools, so
the model has to answer. A task with a form (``extras["form_fields"]``) asks for a JSON object
with those fields (``response_format`` json_object) and its result is that object (stored by
the worker as ``{form_id: {...}}``); otherwise the result is the answer text.

``ask_human`` ends the run waiting for input (a ``human_asked`` event with
``{role, text, type, options}``). The conversation so far is saved in the task's draft under
``"llm_conversation"`` (``{"messages": [...], "ask_call_id": …}``); when the answered task
runs again, the conversation is rebuilt from that draft and the answer
(``extras["human_response"]``) becomes the result of the ``ask_human`` call, so the model
continues where it stopped. A retry of the resumed run starts again from the same saved point.

Provider errors: timeouts, connection errors, 408/409/429 and 5xx raise
:class:`~processgpt.domain.errors.RetryLater` (``Retry-After`` honoured), so the task's retry
policy applies; any other 4xx fails the task at once with :class:`ModelRequestRejected`.
Error messages never contain the API key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from a2a.helpers import new_text_artifact, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import TaskArtifactUpdateEvent, TaskState, TaskStatus, TaskStatusUpdateEvent
from google.protobuf.struct_pb2 import Struct

from processgpt import tracing
from processgpt.agents.a2a_adapter import ProcessGPTEventQueue, ProcessGPTRequestContext
from processgpt.agents.delegate import DELEGATE, DELEGATE_TOOL, Delegator
from processgpt.agents.llm_attachments import attachment_parts, with_attachments
from processgpt.agents.llm_conversation import (
    ASK_HUMAN,
    ASK_HUMAN_TOOL,
    STATE_KEY,
    form_answer,
    form_reminder,
    human_question,
    initial_messages,
    resumed,
    saved_state,
    tool_arguments,
)
from processgpt.agents.llm_errors import provider_message, retry_after
from processgpt.agents.llm_plan import TaskPlan
from processgpt.config import (
    DEFAULT_LLM_INSTRUCTIONS,
    DEFAULT_LLM_MODEL,
    LLM_MAX_STEPS_LIMIT,
    LlmSettings,
)
from processgpt.domain.errors import InvalidInput, RetryLater
from processgpt.memory.bound import TaskMemory
from processgpt.tools.file_tools import SEND_FILE, SEND_FILE_TOOL, call_send_file
from processgpt.tools.mcp import McpConnections, ToolOutcome, Toolset
from processgpt.tools.memory_tools import (
    MEMORY_SAVE_TOOL,
    MEMORY_SEARCH_TOOL,
    MEMORY_TOOLS,
    call_memory_tool,
)

if TYPE_CHECKING:  # imported when the first task runs: a worker of other agents never loads it
    from openai import AsyncOpenAI

DEFAULT_MODEL = DEFAULT_LLM_MODEL
DEFAULT_INSTRUCTIONS = DEFAULT_LLM_INSTRUCTIONS
MAX_STEPS_LIMIT = LLM_MAX_STEPS_LIMIT
_MAX_PROVIDER_MESSAGE = 300


class ModelRequestRejected(InvalidInput):
    """The model endpoint refused the request (a 4xx other than 408/409/429) or the model
    could not produce a usable answer: a new attempt would not help."""

    code = "model_request_rejected"


# -- configuration ---------------------------------------------------------------------------
# The settings are built by the composition root (``LlmSettings`` in ``processgpt.config``) and
# passed in; a task's ``input`` and its agent profile override them per task (``TaskPlan``).


# -- one completion --------------------------------------------------------------------------


@dataclass
class _ToolCall:
    id: str = ""
    name: str = ""
    arguments: str = ""

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments or "{}"},
        }


@dataclass
class _Step:
    text: str = ""
    tool_calls: list[_ToolCall] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)

    def assistant_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.message() for call in self.tool_calls]
        return message


class LlmExecutor(AgentExecutor):
    """A tool-calling agent on an OpenAI-compatible endpoint, with MCP tools and ask_human."""

    agent_name = "llm"
    """The name configuration errors use."""

    def __init__(
        self,
        settings: LlmSettings | None = None,
        *,
        connections: McpConnections | None = None,
        delegator: Delegator | None = None,
    ) -> None:
        """``settings``: the model endpoint (default: ``LlmSettings()``, from the environment).
        Raises :class:`~processgpt.domain.errors.InvalidConfiguration` when no endpoint is
        configured, so a worker fails at start instead of failing every task."""
        self.settings = settings if settings is not None else LlmSettings()
        self.settings.require_endpoint(self.agent_name)
        self.delegator = delegator or Delegator.from_env()
        # Not `or`: an empty pool has len() 0 and is falsy.
        self.connections = connections if connections is not None else McpConnections()
        self._owns_connections = connections is None
        self._client: AsyncOpenAI | None = None

    async def aclose(self) -> None:
        """Close the HTTP client, the delegate tool's database pool and (when this executor
        made it) the MCP connection pool. Call on worker shutdown."""
        await self.delegator.aclose()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._owns_connections:
            await self.connections.close()

    def _openai(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI  # noqa: PLC0415 - loaded by the first task

            self._client = AsyncOpenAI(
                base_url=self.settings.base_url,
                # Local endpoints (Ollama, vLLM) take any key; the client insists on one.
                api_key=self.settings.api_key or "not-needed",
                timeout=self.settings.timeout,
                max_retries=0,  # retries belong to the task's retry policy
            )
        return self._client

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        if not isinstance(context, ProcessGPTRequestContext) or not isinstance(
            event_queue, ProcessGPTEventQueue
        ):
            raise InvalidInput("the llm agent runs on a processgpt worker")
        data = context.get_context_data()
        row: dict[str, Any] = data["row"]
        extras: dict[str, Any] = data["extras"]
        options: dict[str, Any] = row.get("input") or {}
        plan = TaskPlan.of(self.settings, options, extras)
        self._openai()  # a client that cannot be made fails before servers are started
        toolset = await self._toolset(
            str(row["tenant_id"]), context.tenant_mcp_config, event_queue, plan
        )
        try:
            await self._converse(context, event_queue, plan, toolset)
        finally:
            self.connections.release(toolset)

    async def _converse(
        self,
        context: ProcessGPTRequestContext,
        event_queue: ProcessGPTEventQueue,
        plan: TaskPlan,
        toolset: Toolset,
    ) -> None:
        """The steps of one run, with ``toolset``'s MCP tools."""
        data = context.get_context_data()
        row: dict[str, Any] = data["row"]
        extras: dict[str, Any] = data["extras"]
        client = self._openai()
        tools = self._tools(context, event_queue, toolset)

        resume = resumed(row.get("draft"), extras.get("human_response"))
        if resume is not None:
            messages, ask_call_id = resume
            await event_queue.tool_result(ask_call_id, ASK_HUMAN, extras["human_response"])
        else:
            messages = initial_messages(
                plan.instructions, plan.form_fields, row, extras, context.get_user_input()
            )
            if extras.get("files") and event_queue.has_files:
                with_attachments(messages, await attachment_parts(context.files))

        for step_number in range(1, plan.max_steps + 1):
            last = step_number == plan.max_steps
            await event_queue.step_started()
            step = await self._complete(
                client, event_queue, plan, messages, None if last else tools
            )
            await event_queue.step_finished(step.usage)
            if step.tool_calls:
                if last:
                    raise ModelRequestRejected(
                        f"the model still called tools after {plan.max_steps} steps"
                    )
                messages.append(step.assistant_message())
                asked = await self._run_tools(
                    event_queue, toolset, step.tool_calls, messages, row, memory=context.memory
                )
                if asked is not None:
                    await _ask(context, event_queue, messages, *asked)
                    return
                continue
            answer: Any = step.text
            if plan.form_fields:
                answer = form_answer(step.text)
                if answer is None:
                    if last:
                        raise ModelRequestRejected(
                            "the model's answer is not a JSON object with the form's fields"
                        )
                    messages.append(step.assistant_message())
                    messages.append({"role": "user", "content": form_reminder(plan.form_fields)})
                    continue
            await finish(context, event_queue, answer)
            return

    def _tools(
        self, context: ProcessGPTRequestContext, queue: ProcessGPTEventQueue, toolset: Toolset
    ) -> list[dict[str, Any]]:
        """The tools offered: the task's MCP tools and the built-ins that can work here."""
        tools = [*toolset.schemas(), ASK_HUMAN_TOOL]
        if self.delegator.available:
            tools.append(DELEGATE_TOOL)
        if context.memory is not None:
            tools += [MEMORY_SEARCH_TOOL, MEMORY_SAVE_TOOL]
        if queue.has_files:
            tools.append(SEND_FILE_TOOL)
        return tools

    async def _toolset(
        self,
        tenant_id: str,
        tenant_config: Any,
        queue: ProcessGPTEventQueue,
        plan: TaskPlan,
    ) -> Toolset:
        servers = self.connections.plan(tenant_id, tenant_config)
        usable = [server for server in servers.servers if plan.allows_server(server.name)]
        toolset = await self.connections.toolset(usable) if usable else Toolset()
        toolset.unavailable.update(
            {name: why for name, why in servers.refused.items() if plan.allows_server(name)}
        )
        if plan.allowed_tools:
            toolset.tools = {k: t for k, t in toolset.tools.items() if plan.allows_tool(t)}
        if toolset.unavailable:
            try:
                await queue.progress({"unavailable": toolset.unavailable}, name="mcp_servers")
            except BaseException:
                self.connections.release(toolset)
                raise
        return toolset

    async def _complete(
        self,
        client: AsyncOpenAI,
        queue: ProcessGPTEventQueue,
        plan: TaskPlan,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
    ) -> _Step:
        """One streamed completion (see :meth:`_completion`), in an ``llm.chat`` span when
        tracing is on (model and token counts; never the messages)."""
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": plan.model}
        with tracing.span("llm.chat", attributes, client=True) as span:
            step = await self._completion(client, queue, plan, messages, tools)
            if span is not None:
                span.set_attribute("gen_ai.response.tool_calls", len(step.tool_calls))
                if step.usage:
                    span.set_attribute("gen_ai.usage.input_tokens", step.usage["prompt_tokens"])
                    span.set_attribute(
                        "gen_ai.usage.output_tokens", step.usage["completion_tokens"]
                    )
        return step

    async def _completion(
        self,
        client: AsyncOpenAI,
        queue: ProcessGPTEventQueue,
        plan: TaskPlan,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
    ) -> _Step:
        """One streamed completion: text goes to the log as it arrives, tool-call deltas are
        assembled by index."""
        import openai  # noqa: PLC0415

        request: dict[str, Any] = {
            "model": plan.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = tools
        if plan.form_fields:
            request["response_format"] = {"type": "json_object"}
        step = _Step()
        text: list[str] = []
        calls: dict[int, _ToolCall] = {}
        try:
            stream = await client.chat.completions.create(**request)
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        step.usage = {
                            "prompt_tokens": chunk.usage.prompt_tokens,
                            "completion_tokens": chunk.usage.completion_tokens,
                            "total_tokens": chunk.usage.total_tokens,
                            "model": chunk.model or plan.model,
                        }
                    for choice in chunk.choices:
                        delta = choice.delta
                        reasoning = getattr(delta, "reasoning_content", None)
                        if isinstance(reasoning, str) and reasoning:
                            await queue.reasoning(reasoning)
                        if delta.content:
                            text.append(delta.content)
                            await queue.text(delta.content)
                        for part in delta.tool_calls or []:
                            call = calls.setdefault(part.index, _ToolCall())
                            call.id = part.id or call.id
                            if part.function is not None:
                                call.name += part.function.name or ""
                                call.arguments += part.function.arguments or ""
        except openai.APIError as exc:
            raise self._provider_error(exc) from None
        step.text = "".join(text)
        for index in sorted(calls):
            call = calls[index]
            call.id = call.id or f"call_{uuid.uuid4().hex[:12]}"
            step.tool_calls.append(call)
        return step

    def _provider_error(self, exc: Exception) -> Exception:
        """Retryable provider errors → RetryLater; the rest → ModelRequestRejected. The
        message names the status and the provider's message, redacted of the API key."""
        import openai  # noqa: PLC0415

        if isinstance(exc, openai.APITimeoutError):
            return RetryLater(
                f"the model endpoint did not answer within {self.settings.timeout:g}s"
            )
        if isinstance(exc, openai.APIConnectionError):
            return RetryLater("cannot reach the model endpoint (connection error)")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._redact(provider_message(exc))
            message = f"the model endpoint answered HTTP {status}: {detail}"
            if status in (408, 409, 429) or status >= 500:
                return RetryLater(message, delay=retry_after(exc.response.headers))
            return ModelRequestRejected(message)
        # An error event inside the stream: the provider failed mid-answer.
        return RetryLater(f"the model stream failed: {self._redact(str(exc))}")

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        if key:
            text = text.replace(key, "***")
            if len(key) > 12:  # providers echo keys partly masked: sk-abc…wxyz
                text = text.replace(key[-4:], "***").replace(key[:8], "***")
        return text[:_MAX_PROVIDER_MESSAGE]

    async def _run_tools(
        self,
        queue: ProcessGPTEventQueue,
        toolset: Toolset,
        calls: list[_ToolCall],
        messages: list[dict[str, Any]],
        row: Mapping[str, Any],
        *,
        memory: TaskMemory | None = None,
    ) -> tuple[_ToolCall, dict[str, Any]] | None:
        """Run the step's tool calls in order and append their results. Returns the first
        ``ask_human`` call (with its arguments), which is answered when the task resumes."""
        asked: tuple[_ToolCall, dict[str, Any]] | None = None
        for call in calls:
            arguments, problem = tool_arguments(call.arguments)
            queue.tool_call(call.name, arguments, tool_call_id=call.id)
            if problem is not None:
                outcome = ToolOutcome(text=f"Error: {problem}", error=problem)
            elif call.name == ASK_HUMAN and asked is None:
                if not str(arguments.get("question") or "").strip():
                    problem = "ask_human needs a question"
                    outcome = ToolOutcome(text=f"Error: {problem}", error=problem)
                else:
                    asked = (call, arguments)
                    continue
            elif call.name == ASK_HUMAN:
                problem = "ask one question at a time"
                outcome = ToolOutcome(text=f"Error: {problem}", error=problem)
            elif call.name in toolset.tools:
                outcome = await self.connections.call(toolset.tools[call.name], arguments)
            elif call.name in MEMORY_TOOLS and memory is not None:
                outcome = await call_memory_tool(memory, call.name, arguments)
            elif call.name == SEND_FILE and queue.has_files:
                outcome = await call_send_file(queue, arguments)
            elif call.name == DELEGATE and self.delegator.available:
                outcome = await self.delegator.call(row, call.id, arguments)
            else:
                problem = f"there is no tool named {call.name!r}"
                outcome = ToolOutcome(text=f"Error: {problem}", error=problem)
            await queue.tool_result(call.id, call.name, outcome.output, error=outcome.error)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.text})
        return asked

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """Nothing to release: the worker cancels the running ``execute`` (which closes the
        model stream); MCP connections stay pooled."""


# -- asking a person and finishing -----------------------------------------------------------


def _metadata(**values: str) -> Struct:
    meta = Struct()
    meta.update(values)
    return meta


async def _ask(
    context: RequestContext,
    queue: ProcessGPTEventQueue,
    messages: list[dict[str, Any]],
    call: _ToolCall,
    arguments: Mapping[str, Any],
) -> None:
    """Save the conversation in the draft, then end the run waiting for the answer."""
    task_id, context_id = str(context.task_id), str(context.context_id)
    state = saved_state(messages, call.id)
    await queue.enqueue_event(
        TaskArtifactUpdateEvent(
            task_id=task_id,
            context_id=context_id,
            artifact=new_text_artifact(name=STATE_KEY, text=json.dumps(state, ensure_ascii=False)),
            last_chunk=False,
        )
    )
    await queue.enqueue_event(
        TaskStatusUpdateEvent(
            task_id=task_id,
            context_id=context_id,
            status=TaskStatus(
                state=TaskState.TASK_STATE_INPUT_REQUIRED,
                message=new_text_message(json.dumps(human_question(arguments), ensure_ascii=False)),
            ),
            metadata=_metadata(
                event_type="human_asked",
                job_id=f"human_asked_{uuid.uuid4()}",
                crew_type="agent",
            ),
        )
    )


async def finish(context: RequestContext, queue: ProcessGPTEventQueue, answer: Any) -> None:
    """End the run with ``answer`` as its result (text as is, other values as JSON)."""
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    await queue.enqueue_event(
        TaskArtifactUpdateEvent(
            task_id=str(context.task_id),
            context_id=str(context.context_id),
            artifact=new_text_artifact(name="result", text=text),
            last_chunk=True,
        )
    )
