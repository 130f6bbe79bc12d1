"""Solutions to lesson 07's exercises, written the way the lesson writes its schemas, tools and requests."""

from __future__ import annotations

import copy


def strict_schema(loose: dict) -> dict:
    """Exercise 1: every object, nested ones too, requires all its properties and forbids others."""
    schema = copy.deepcopy(loose)

    def tighten(node):
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                node["required"] = list(node.get("properties", {}))
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)

    tighten(schema)
    return schema


def weather_tool() -> dict:
    """Exercise 2: a Chat Completions tool (nested under "function"), strict, its parameters a strict schema."""
    return {"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city", "strict": True,
        "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "unit"],
                       "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}}}}}


def as_responses(chat: dict) -> dict:
    """Exercise 3: the system message becomes `instructions`, the rest `input`; max_output_tokens; the schema
    goes flat under text.format."""
    system = [m["content"] for m in chat["messages"] if m["role"] in ("system", "developer")]
    rest = [m for m in chat["messages"] if m["role"] not in ("system", "developer")]
    spec = chat["response_format"]["json_schema"]
    return {"model": chat["model"], "instructions": "\n".join(system), "input": rest,
            "max_output_tokens": chat["max_completion_tokens"],
            "text": {"format": {"type": "json_schema", "name": spec["name"], "schema": spec["schema"],
                                "strict": spec["strict"]}}}


def tool_result_message(call_id: str, result) -> dict:
    """Exercise 4: the result goes back as a `tool` message naming the call it answers."""
    return {"role": "tool", "tool_call_id": call_id, "content": str(result)}
